"""Named account keys in a home's ``keyring/`` folder, beside the node's own key (``simd keys``)."""

from __future__ import annotations

import re
from pathlib import Path

from learnchain.consensus.crypto import PrivateKey
from learnchain.node.home.files import (
    KEY_FILE,
    ConfigError,
    read_key,
    read_key_file,
    write_key_file,
)

KEYRING_DIR = "keyring"
VALIDATOR_KEY_NAME = "validator"  # the node's own key (node_key.json), by this name
KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def is_valid_key_name(name: str) -> bool:
    """Letters, digits, ``_.-``; at most 64 characters; not a path."""
    return KEY_NAME.fullmatch(name) is not None


def compute_key_path(home: Path, name: str) -> Path:
    """Where the key called ``name`` lives."""
    return home / KEYRING_DIR / f"{name}.json"


def add_key(home: Path, name: str) -> PrivateKey:
    """A new random key called ``name``; refuses a name in use."""
    if not is_valid_key_name(name):
        raise ConfigError(f"{name!r}: a key name is letters, digits and _.- (at most 64)")
    path = compute_key_path(home, name)
    if name == VALIDATOR_KEY_NAME or path.exists():
        raise ConfigError(f"a key called {name!r} exists in {home}")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = PrivateKey.generate()
    write_key_file(path, key)
    return key


def get_key(home: Path, name: str) -> PrivateKey:
    """The key called ``name`` (``validator``: the node's own)."""
    if name == VALIDATOR_KEY_NAME:
        return read_key(home)
    path = compute_key_path(home, name)
    if not is_valid_key_name(name) or not path.exists():
        raise ConfigError(
            f"no key called {name!r} in {home} (`learnchain keys list` shows them; "
            f"`learnchain keys add {name}` makes one)"
        )
    return read_key_file(path)


def get_keys(home: Path) -> list[tuple[str, PrivateKey]]:
    """Every key of ``home`` by name: the node's own first, then the keyring's in name order."""
    found = [(VALIDATOR_KEY_NAME, read_key(home))] if (home / KEY_FILE).exists() else []
    folder = home / KEYRING_DIR
    if folder.is_dir():
        found += [(path.stem, read_key_file(path)) for path in sorted(folder.glob("*.json"))]
    return found
