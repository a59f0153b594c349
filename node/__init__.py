"""The learnchain validator daemon and its command line."""
