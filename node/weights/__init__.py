"""Model weights between nodes: the pool of weights by hash (from the store, pushed or fetched),
weights spread in parts like CometBFT's block parts, and weights a node could not use.

May import: libs, store, p2p.
"""
