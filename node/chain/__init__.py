"""The consensus shell around the deterministic engine of ``learnchain.consensus`` (CometBFT's
``consensus/``, ``blocksync/``, ``mempool/`` and ``evidence/``): the driver that feeds the
engine events and carries out its actions, its inbox, block execution, block sync, the
mempool, the commit log, upgrade plugins and fault injection for tests.

May import: libs, home, telemetry, store, p2p, learning.
"""
