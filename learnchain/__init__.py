"""learnchain: validators that train one shared model on a proof-of-stake chain.

The installed packages live under this one name (``learnchain.node``, ``learnchain.consensus``,
``learnchain.ml``, ``learnchain.proto``) so that they cannot collide with other distributions'
top-level packages, such as the ``proto`` of proto-plus. In a checkout the four folders sit at the
repository's top level and this folder links to them.
"""
