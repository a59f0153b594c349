"""Talking to peers (CometBFT's ``p2p/``): outgoing gRPC channels and the peer set, signed
Hellos and fetch requests, and the peer manager that dials validators and pushes messages.

May import: home, store.
"""
