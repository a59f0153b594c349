"""What an operator sees: Prometheus metrics (CometBFT's families and the learning ones) and
the node's structured logs.

May import: learning.

(learning for a type only: the node's own evaluation, which the metrics show.)
"""
