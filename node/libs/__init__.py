"""Small helpers every subsystem may use: background task groups, giving memory back to the
system, and the environment a harness sets for the nodes it starts.

May import: nothing else in learnchain.node.
"""
