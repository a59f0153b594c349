"""What a node serves (CometBFT's ``rpc/``): the gRPC server with the Peer service validators
call and the Query service the CLI calls, the read side of the chain behind them, what
``query status`` shows, and the web dashboard.

May import: libs, home, store, p2p, weights, learning.
"""
