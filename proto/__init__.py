"""Wire schema (.proto) and the code generated from it."""
