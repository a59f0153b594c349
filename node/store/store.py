"""The node's LevelDB store (plyvel): blocks, commits, state and sign state; and, beside it, the
weights files (``store.weights``, node/store/weights_store.py: ``data/weights/<hash>.safetensors``).

Keys (one prefix byte each): ``b``+height -> block, ``h``+hash -> height, ``c``+height -> commit,
``l``+height -> the learning record after that block, ``t``+tx hash -> (height, index),
``s`` -> latest state, ``p`` -> sign state, ``v`` -> the store format (``STORE_FORMAT``: a build
refuses, saying why, a database another format wrote, and migrates one it knows how to). A
block, its commit and the state it produces go in one write batch with ``sync=True``: after a
crash the store holds either the old height or the new one, never half.

Format 1 kept weights in LevelDB too, as content-addressed 1 MiB chunks (``w``+weights hash ->
chunk manifest, ``k``+chunk hash -> chunk); opening such a store moves them into files and
records format 2 (node/store/store_migrations.py).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn, TypeVar

import plyvel

from learnchain.consensus.events import SignState
from learnchain.consensus.learning_record import LearningRecord
from learnchain.consensus.messages import Block, Commit
from learnchain.consensus.state import ChainState
from learnchain.consensus.types import Hash, Height
from learnchain.node.store.store_error import StoreError
from learnchain.node.store.store_migrations import MIGRATIONS
from learnchain.node.store.weights_store import WEIGHTS_DIR, WeightsStore
from learnchain.proto import learnchain_pb2 as pb
from learnchain.proto.wire import (
    block_from_proto,
    block_to_proto,
    commit_from_proto,
    commit_to_proto,
    learning_from_proto,
    learning_to_proto,
    sign_state_from_proto,
    sign_state_to_proto,
    state_from_proto,
    state_to_proto,
)

T = TypeVar("T")
# The memtable size trades memory for large writes. LevelDB's default 4 MB makes a 100 MB weights
# write about twice as slow as 32 MB does (bench/weights_propagation.py), but a node holds up to
# two memtables plus the mapped tables they flush to, which with 32 MB kept a digits validator
# about 80 MB larger after a few hundred heights (bench/learning_round.py). 8 MB is between.
WRITE_BUFFER_BYTES = 8 << 20
# Bump whenever what is stored changes its encoding (a block header field, the state's fields, a
# vote extension...): tests/node/test_store.py pins the bytes of a small chain to catch it.
STORE_FORMAT = 2
_FORMAT = struct.Struct(">I")
_HEIGHT = struct.Struct(">Q")
_TX_PLACE = struct.Struct(">QI")  # height, index in the block


def compute_recovery(path: Path) -> str:
    """The way out for a damaged database at ``path`` (a node home's ``data/chain.db``)."""
    return (
        f"restore it from a backup, or run `learnchain unsafe-reset-all --home "
        f"{path.parent.parent}` and let the node sync from its peers (the node key and, when "
        "readable, the double-sign guard are kept)"
    )


_CHAIN_PREFIXES = (b"b", b"c", b"h", b"l", b"t")  # everything but weights, which peers resend
_NAMES = {b"b": "block", b"c": "commit"}
_STATE_KEY = b"s"
_SIGN_STATE_KEY = b"p"
_FORMAT_KEY = b"v"


def _height_key(prefix: bytes, height: int) -> bytes:
    return prefix + _HEIGHT.pack(height)


class Store:
    """One node's database, opened by one process."""

    def __init__(self, path: str | Path, check: bool = True) -> None:
        """Open (or create) the database; with ``check``, check that this build reads its
        format and the stored chain's integrity."""
        self.path = Path(path)
        # A directory with files in it is an existing database: never create one over it. With
        # create_if_missing, LevelDB takes a database whose CURRENT file is lost for a new one and
        # deletes every table file of the old as obsolete (all committed blocks gone, silently).
        existing = self.path.is_dir() and any(self.path.iterdir())
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"{self.path}: cannot create its folder ({error.strerror})") from None
        try:
            self._db = plyvel.DB(
                str(self.path),
                create_if_missing=not existing,
                paranoid_checks=True,
                write_buffer_size=WRITE_BUFFER_BYTES,
            )
        except plyvel.IOError as error:
            raise StoreError(f"{self.path}: cannot open the database ({error})") from error
        except plyvel.CorruptionError as error:
            raise StoreError(
                f"{self.path}: the database is corrupt ({error}); {compute_recovery(self.path)}"
            ) from error
        except plyvel.Error as error:
            if existing and not (self.path / "CURRENT").exists():
                raise StoreError(
                    f"{self.path}: the database is damaged (its CURRENT file is missing); "
                    f"{compute_recovery(self.path)}"
                ) from error
            raise StoreError(f"{self.path}: cannot open the database ({error})") from error
        self.weights = WeightsStore(self.path.parent / WEIGHTS_DIR)
        if check:
            self.check_format()
            self.check_integrity()

    def get_format(self) -> int | None:
        """The store format recorded in the database; None when none is (a new database, or
        one from before formats were recorded)."""
        data = self._db.get(_FORMAT_KEY)
        return None if data is None or len(data) != _FORMAT.size else _FORMAT.unpack(data)[0]

    def check_format(self) -> None:
        """Record ``STORE_FORMAT`` in a database that holds no chain yet; StoreError saying what
        to do when the stored chain is in another format."""
        found = self.get_format()
        while found is not None and found in MIGRATIONS:  # older formats this build upgrades
            MIGRATIONS[found](self._db, self.weights)
            found = self.get_format()
        if found == STORE_FORMAT:
            return
        if found is None and self._db.get(_STATE_KEY) is None:
            self._db.put(_FORMAT_KEY, _FORMAT.pack(STORE_FORMAT), sync=True)
            return
        written_by = (
            "an older learnchain (before store formats were recorded)"
            if found is None
            else f"{'a newer' if found > STORE_FORMAT else 'an older'} learnchain (format {found})"
        )
        raise StoreError(
            f"{self.path}: the stored chain was written by {written_by}; this build reads "
            f"store format {STORE_FORMAT}. Run the learnchain version that wrote it, or run "
            f"`learnchain unsafe-reset-all --home {self.path.parent.parent}` and let the node "
            "sync from its peers (the node key and the double-sign guard are kept)"
        )

    def close(self) -> None:
        """Release the database."""
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- blocks, commits, state -----------------------------------------------------------

    def check_integrity(self) -> None:
        """Read every stored block, commit and index entry with LevelDB's checksums on (a
        sequential scan, see bench/README.md), and check that blocks and commits run from 1 to
        the state's height; StoreError naming what is wrong otherwise."""
        state = self.load_state()
        height = 0 if state is None else state.height
        try:
            for prefix in _CHAIN_PREFIXES:
                count = 0
                for key, _ in self._db.iterator(
                    prefix=prefix, verify_checksums=True, fill_cache=False
                ):
                    count += 1
                    if prefix in _NAMES and _HEIGHT.unpack(key[1:])[0] != count:
                        self._fail(f"{_NAMES[prefix]} {count} is missing")
                if prefix in _NAMES and count != height:
                    self._fail(
                        f"{_NAMES[prefix]}s stop at height {count}, the state is at {height}"
                    )
        except plyvel.CorruptionError as error:
            self._fail(f"the stored chain is corrupt ({error})")

    def _fail(self, what: str) -> NoReturn:
        raise StoreError(f"{self.path}: {what}; {compute_recovery(self.path)}")

    def save_block(self, block: Block, commit: Commit, state: ChainState) -> None:
        """Store a decided block, its commit and the new state atomically and durably."""
        self.save_blocks([(block, commit)], state)

    def save_blocks(
        self,
        decided: list[tuple[Block, Commit]],
        state: ChainState,
        learning: list[LearningRecord] | None = None,
    ) -> list[int]:
        """Store several consecutive decided blocks and the state after the last, atomically;
        with ``learning``, the learning record after each block too (for ``query history``).
        Each block's encoded size, in order."""
        sizes = []
        with self._db.write_batch(transaction=True, sync=True) as batch:
            for (block, _), record in zip(decided, learning or [], strict=False):
                batch.put(
                    _height_key(b"l", block.height),
                    learning_to_proto(record).SerializeToString(),
                )
            for block, commit in decided:
                encoded = block_to_proto(block).SerializeToString()
                sizes.append(len(encoded))
                batch.put(_height_key(b"b", block.height), encoded)
                batch.put(b"h" + block.hash, _HEIGHT.pack(block.height))
                for index, signed in enumerate(block.txs):
                    batch.put(b"t" + signed.hash(), _TX_PLACE.pack(block.height, index))
                batch.put(
                    _height_key(b"c", block.height), commit_to_proto(commit).SerializeToString()
                )
            batch.put(_STATE_KEY, state_to_proto(state).SerializeToString())
        return sizes

    def save_state(self, state: ChainState) -> None:
        """Store a state on its own (the genesis state)."""
        self._db.put(_STATE_KEY, state_to_proto(state).SerializeToString(), sync=True)

    def load_or_init_state(self, genesis: ChainState) -> ChainState:
        """The latest state, or ``genesis`` (written) for a new database; StoreError when the
        database belongs to another chain. A database still at height 0 whose genesis state is
        not ``genesis`` (a first start failed, then genesis.json was made again) starts over
        from ``genesis``: nothing was committed on the old one, and keeping it would leave the
        node following a chain that does not exist."""
        state = self.load_state()
        if state is None or (state.height == 0 and state != genesis):
            self.save_state(genesis)
            return genesis
        if state.chain_id != genesis.chain_id:
            raise StoreError(
                f"{self.path}: the database is for chain {state.chain_id!r}, "
                f"genesis.json for {genesis.chain_id!r}"
            )
        return state

    def _read(self, key: bytes, what: str, parse: Callable[[bytes], T]) -> T | None:
        """The value at ``key`` parsed, None when absent, StoreError when unreadable."""
        data = self._db.get(key)
        if data is None:
            return None
        try:
            return parse(data)
        except Exception as error:  # protobuf's DecodeError, or WireError for bad fields
            raise StoreError(f"{self.path}: {what} is unreadable ({error})") from error

    def load_state(self) -> ChainState | None:
        """The latest state, or None for a new database."""
        return self._read(
            _STATE_KEY, "the stored state", lambda d: state_from_proto(pb.ChainState.FromString(d))
        )

    def get_block(self, height: int) -> Block | None:
        """The block at ``height``."""
        return self._read(
            _height_key(b"b", height),
            f"block {height}",
            lambda d: block_from_proto(pb.Block.FromString(d)),
        )

    def get_tx_place(self, tx_hash: Hash) -> tuple[Height, int] | None:
        """Where a committed transaction is: its block's height and its index there."""
        raw = self._db.get(b"t" + tx_hash)
        if raw is None:
            return None
        height, index = _TX_PLACE.unpack(raw)
        return Height(height), index

    def get_learning_record(self, height: int) -> LearningRecord | None:
        """The learning record after the block at ``height`` (None if not kept)."""
        return self._read(
            _height_key(b"l", height),
            f"learning record {height}",
            lambda raw: learning_from_proto(pb.LearningRecord.FromString(raw)),
        )

    def get_commit(self, height: int) -> Commit | None:
        """The commit that decided the block at ``height``."""
        return self._read(
            _height_key(b"c", height),
            f"commit {height}",
            lambda d: commit_from_proto(pb.Commit.FromString(d)),
        )

    def get_height_of(self, block_hash: Hash) -> Height | None:
        """The height of the block with ``block_hash``."""
        data = self._db.get(b"h" + block_hash)
        return None if data is None else Height(_HEIGHT.unpack(data)[0])

    def iter_raw_blocks(self, start: int, stop: int) -> Iterator[tuple[bytes, bytes]]:
        """(block bytes, commit bytes) for heights in [start, stop), without decoding them."""
        for height in range(start, stop):
            block = self._db.get(_height_key(b"b", height))
            commit = self._db.get(_height_key(b"c", height))
            if block is None or commit is None:
                return
            yield block, commit

    def get_raw_block_batch(
        self, start: int, stop: int, max_blocks: int, max_bytes: int
    ) -> list[tuple[bytes, bytes]]:
        """Consecutive (block bytes, commit bytes) from ``start`` (below ``stop``): at most
        ``max_blocks``, and no more than ``max_bytes`` unless a single block is larger."""
        batch: list[tuple[bytes, bytes]] = []
        size = 0
        for block, commit in self.iter_raw_blocks(start, min(stop, start + max_blocks)):
            size += len(block) + len(commit)
            if batch and size > max_bytes:
                break
            batch.append((block, commit))
        return batch

    # --- sign state -------------------------------------------------------------------------

    def get_recent_model_hashes(self, count: int, max_blocks: int = 10_000) -> list[Hash]:
        """The last ``count`` distinct model hashes of committed blocks, oldest first (looking
        back at most ``max_blocks`` blocks)."""
        state = self.load_state()
        if state is None:
            return []
        found = [state.model_hash]
        for height in range(state.height, max(0, state.height - max_blocks), -1):
            if len(found) == count:
                break
            block = self.get_block(height)
            if block is None:
                break
            if block.header.model_hash != found[-1]:
                found.append(block.header.model_hash)
        return found[::-1]

    def save_sign_state(self, sign_state: SignState) -> None:
        """Persist the double-sign guard durably (before the signature leaves the node)."""
        self._db.put(
            _SIGN_STATE_KEY, sign_state_to_proto(sign_state).SerializeToString(), sync=True
        )

    def load_sign_state(self) -> SignState | None:
        """The last persisted sign state."""
        return self._read(
            _SIGN_STATE_KEY,
            "the sign state",
            lambda d: sign_state_from_proto(pb.SignState.FromString(d)),
        )
