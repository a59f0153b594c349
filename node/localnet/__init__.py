"""Real ``learnchain start`` processes on loopback: the harness behind ``learnchain demo``,
the end-to-end tests and the benches.

May import: libs, home.
"""
