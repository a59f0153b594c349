"""Model weights as content-addressed files: ``data/weights/<hash>.safetensors``.

A file is the weights' safetensors bytes, named by their canonical hash (ml.codec), and only
ever put there whole: weights arrive (or are written by this node's learner) into ``partial/``
and are renamed into place once their hash is checked, so a file under its hash is always those
weights. The learner and the services read them slice by slice (ml.weights_file), so a node
never holds a model's bytes in memory to store, check, serve or aggregate it.

Files are not synced: weights can be fetched again from peers, and the synced write of the
block that names them follows the rename. After a crash a file may be missing or, if the
crash came between the write and the rename, only a leftover in ``partial/`` (deleted at
start); a missing committed model is fetched again like any other.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from learnchain.consensus.types import Hash
from learnchain.node.store.store_error import StoreError

WEIGHTS_DIR = "weights"
PARTIAL_DIR = "partial"
SUFFIX = ".safetensors"
READ_CHUNK_BYTES = 1 << 20
_counter = itertools.count()


@dataclass(frozen=True)
class EncodedWeights:
    """Weights as they travel and are stored: their canonical hash and their file (safetensors,
    in the node's weights store)."""

    weights_hash: Hash
    path: Path

    def read_small(self, limit: int) -> bytes:
        """The file's bytes when it is at most ``limit`` bytes (pushed beside a message), else
        empty."""
        try:
            if self.path.stat().st_size > limit:
                return b""
            return self.path.read_bytes()
        except FileNotFoundError:
            return b""


class WeightsStore:
    """The weights files of a node (a folder beside its LevelDB)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.partial = folder / PARTIAL_DIR
        try:
            self.partial.mkdir(parents=True, exist_ok=True)
            for leftover in self.partial.iterdir():  # a crash between a write and its rename
                leftover.unlink()
        except OSError as error:
            problem = error.strerror
            raise StoreError(f"{folder}: cannot use the weights folder ({problem})") from None

    def path_of(self, weights_hash: Hash) -> Path:
        """Where the weights with ``weights_hash`` are (or would be) stored."""
        return self.folder / f"{weights_hash.hex()}{SUFFIX}"

    def has(self, weights_hash: Hash) -> bool:
        """True when the weights are stored."""
        return self.path_of(weights_hash).exists()

    def get_size(self, weights_hash: Hash) -> int | None:
        """The stored weights' size in bytes, or None."""
        try:
            return self.path_of(weights_hash).stat().st_size
        except FileNotFoundError:
            return None

    def new_partial(self) -> Path:
        """A fresh path in ``partial/`` for weights being written or received."""
        return self.partial / f"{os.getpid()}-{next(_counter)}{SUFFIX}"

    def adopt(self, partial: Path, weights_hash: Hash) -> Path:
        """Move checked weights from ``partial`` into place under their hash (atomic)."""
        target = self.path_of(weights_hash)
        os.replace(partial, target)
        return target

    def put(self, weights_hash: Hash, data: bytes | bytearray | memoryview) -> Path:
        """Store weights given as bytes (already checked) under their hash."""
        partial = self.new_partial()
        partial.write_bytes(data)
        return self.adopt(partial, weights_hash)

    def iter_chunks(self, weights_hash: Hash) -> Iterator[bytes]:
        """The stored weights' bytes, chunk by chunk; empty when they are not stored."""
        try:
            handle = self.path_of(weights_hash).open("rb")
        except FileNotFoundError:
            return
        with handle:
            while chunk := handle.read(READ_CHUNK_BYTES):
                yield chunk

    def list_hashes(self) -> list[Hash]:
        """The hashes of every stored weights file."""
        hashes = []
        for path in self.folder.glob(f"*{SUFFIX}"):
            try:
                hashes.append(Hash(bytes.fromhex(path.name.removesuffix(SUFFIX))))
            except ValueError:
                continue
        return hashes

    def prune(self, keep: set[Hash], also_keep: Callable[[Hash], bool] = lambda _: False) -> int:
        """Delete every stored weights file not in ``keep`` nor ``also_keep`` (asked as each
        file comes: it may change while the prune runs); how many."""
        pruned = 0
        for weights_hash in self.list_hashes():
            if weights_hash not in keep and not also_keep(weights_hash):
                self.path_of(weights_hash).unlink(missing_ok=True)
                pruned += 1
        return pruned

    def get_disk_bytes(self) -> int:
        """What the stored weights take on disk."""
        return sum(path.stat().st_blocks * 512 for path in self.folder.glob(f"*{SUFFIX}"))

    def clear(self) -> None:
        """Delete every stored weights file (``unsafe-reset-all``)."""
        shutil.rmtree(self.folder, ignore_errors=True)
