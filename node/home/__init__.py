"""A node's home folder: reading and writing config.toml, genesis.json and the node key, the
keyring, the TLS files, and creating homes (``init``, ``testnet``, the genesis ceremony).

May import: nothing else in learnchain.node.
"""
