"""Upgrading a stored chain from an older store format, at open.

``MIGRATIONS[f]`` turns a database of format ``f`` into format ``f + 1`` in place, recording the
new format last (in the same synced batch as its final change), so a crash mid-way leaves a
database that the next open migrates again. ``Store.check_format`` runs them in turn up to
``STORE_FORMAT``; a format with no migration is refused with the way out.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from learnchain.consensus.types import HASH_LENGTH, Hash
from learnchain.node.store.weights_store import WeightsStore

_FORMAT_KEY = b"v"
_FORMAT = struct.Struct(">I")


def migrate_weights_to_files(db: Any, weights: WeightsStore) -> None:
    """Format 1 to 2: every weights' 1 MiB chunks out of LevelDB (``w``+hash -> manifest,
    ``k``+chunk hash -> chunk) into a file under its hash, each file complete before any key
    goes; then the keys deleted and format 2 recorded, in one synced batch."""
    for key, manifest in list(db.iterator(prefix=b"w")):
        chunks = []
        for offset in range(8, len(manifest), HASH_LENGTH):
            chunk = db.get(b"k" + manifest[offset : offset + HASH_LENGTH])
            if chunk is None:
                break  # never complete: fetched again from peers when needed
            chunks.append(chunk)
        else:
            weights.put(Hash(key[1:]), b"".join(chunks))
    with db.write_batch(transaction=True, sync=True) as batch:
        for prefix in (b"w", b"k"):
            for key in db.iterator(prefix=prefix, include_value=False):
                batch.delete(key)
        batch.put(_FORMAT_KEY, _FORMAT.pack(2))


MIGRATIONS: dict[int, Callable[[Any, WeightsStore], None]] = {1: migrate_weights_to_files}
