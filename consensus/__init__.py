"""learnchain's consensus: the protocol as pure, deterministic logic (no sockets, disk, clock).

Events go in, actions come out; see ``consensus.engine`` for Tendermint's Algorithm 1 with stake
quorums and ``consensus.state`` for the chain state transition.
"""
