"""Model weights as content-addressed chunks in the node's LevelDB.

Keys: ``w`` + weights hash -> manifest (8-byte size, then each chunk's SHA-256), ``k`` + chunk
hash -> chunk. Weights stream in and out chunk by chunk, without whole copies in memory.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from learnchain.consensus.types import HASH_LENGTH, Hash
from learnchain.node.store_error import StoreError

CHUNK_SIZE = 1 << 20
WEIGHTS_BATCH_BYTES = 8 << 20
_SIZE = struct.Struct(">Q")


class WeightsStore:
    """The weights part of a node's database (shares the Store's LevelDB handle)."""

    def __init__(self, db: Any, path: Path) -> None:
        self._db = db
        self.path = path

    def put(
        self,
        weights_hash: Hash,
        chunks: Iterable[bytes | bytearray | memoryview],
        sync: bool = False,
    ) -> int:
        """Store weights as content-addressed chunks under ``weights_hash``; returns the size.

        Not synced by default: weights can be fetched again from peers, and LevelDB appends to
        one log in order, so the synced batch of the block that commits them makes them
        durable too (a crash loses at most weights no block refers to yet).

        Chunks go in write batches of ``WEIGHTS_BATCH_BYTES`` (a 100 MB batch would sit whole in
        LevelDB's log and memtable); the manifest goes last, so weights are never listed before
        all their chunks are stored. Chunks without a manifest are garbage for ``prune``.
        """
        manifest: list[bytes] = []
        size = pending = 0
        batch = self._db.write_batch()
        for chunk in chunks:
            view = memoryview(chunk)
            for start in range(0, len(view), CHUNK_SIZE):
                piece = bytes(view[start : start + CHUNK_SIZE])
                key = hashlib.sha256(piece).digest()
                batch.put(b"k" + key, piece)
                manifest.append(key)
                size += len(piece)
                pending += len(piece)
                if pending >= WEIGHTS_BATCH_BYTES:
                    batch.write()
                    batch, pending = self._db.write_batch(), 0
        batch.write()
        self._db.put(b"w" + weights_hash, _SIZE.pack(size) + b"".join(manifest), sync=sync)
        return size

    def has(self, weights_hash: Hash) -> bool:
        """True when the weights are stored."""
        return self._db.get(b"w" + weights_hash) is not None

    def iter_chunks(self, weights_hash: Hash) -> Iterator[bytes]:
        """The stored weights' bytes, chunk by chunk; empty when they are not stored."""
        manifest = self._db.get(b"w" + weights_hash)
        if manifest is None:
            return
        for offset in range(8, len(manifest), HASH_LENGTH):
            chunk = self._db.get(b"k" + manifest[offset : offset + HASH_LENGTH])
            if chunk is None:
                raise StoreError(f"{self.path}: a chunk of weights {weights_hash.hex()} is missing")
            yield chunk

    def get_size(self, weights_hash: Hash) -> int | None:
        """The stored weights' size in bytes."""
        manifest = self._db.get(b"w" + weights_hash)
        return None if manifest is None else int(_SIZE.unpack(manifest[:8])[0])

    def prune(self, keep: set[Hash]) -> int:
        """Delete every stored weights not in ``keep`` (headers and hashes stay); returns count."""
        referenced: set[bytes] = set()
        doomed: list[bytes] = []
        for key, manifest in self._db.iterator(prefix=b"w"):
            chunks = {manifest[o : o + HASH_LENGTH] for o in range(8, len(manifest), HASH_LENGTH)}
            if Hash(key[1:]) in keep:
                referenced |= chunks
            else:
                doomed.append(key)
        if not doomed:
            return 0
        with self._db.write_batch(transaction=True, sync=True) as batch:
            for key in doomed:
                batch.delete(key)
            for key in self._db.iterator(prefix=b"k", include_value=False):
                if key[1:] not in referenced:
                    batch.delete(key)
        return len(doomed)
