"""The learning application behind consensus (ABCI++'s PrepareProposal / ProcessProposal /
ExtendVote in learnchain's terms): learning rounds, contributions, proposals and their judging,
and following the chain's model.

May import: libs, home, store, p2p, weights, training.
"""
