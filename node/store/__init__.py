"""Storage (CometBFT's ``store/`` and ``state/`` stores): the LevelDB store of blocks, commits,
state and sign state, its worker threads, format migrations and reset, and model weights as
content-addressed safetensors files.

May import: home.
"""
