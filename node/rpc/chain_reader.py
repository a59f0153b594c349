"""The read side of a node, for the gRPC services: committed blocks and state, and weights.

Every store read runs on the store's read thread, never on the event loop that runs consensus.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from learnchain.consensus.learning_record import LearningRecord
from learnchain.consensus.messages import Block, Commit
from learnchain.consensus.state import ChainState
from learnchain.consensus.types import Hash
from learnchain.node.store.store_worker import StoreWorker
from learnchain.node.weights.weights_parts import PartialWeights

RawBlock = tuple[bytes, bytes]  # (block bytes, commit bytes) as stored


class ChainReader:
    """Reads what this node has committed."""

    def __init__(
        self,
        io: StoreWorker,
        committed: Callable[[], ChainState],
        genesis: ChainState,
        genesis_json: bytes,
    ) -> None:
        self._io = io
        self._committed = committed
        self.genesis = genesis
        self.genesis_json = genesis_json

    @property
    def committed(self) -> ChainState:
        """The state of the last block written to the store."""
        return self._committed()

    async def read_block_batch(
        self, start: int, stop: int, max_blocks: int, max_bytes: int
    ) -> list[RawBlock]:
        """Stored blocks and commits from ``start`` for one GetBlocks message."""
        return await self._io.read(
            self._io.store.get_raw_block_batch, start, stop, max_blocks, max_bytes
        )

    async def read_raw_block(self, height: int) -> RawBlock | None:
        """The stored block and commit at ``height``."""
        batch = await self.read_block_batch(height, height + 1, 1, 0)
        return batch[0] if batch else None

    async def read_tx(self, tx_hash: Hash) -> tuple[Block, int] | None:
        """The block that committed a transaction and its index there (None: not committed)."""

        def read() -> tuple[Block, int] | None:
            store = self._io.store
            place = store.get_tx_place(tx_hash)
            if place is None:
                return None
            block = store.get_block(place[0])
            return None if block is None else (block, place[1])

        return await self._io.read(read)

    async def read_history(
        self, start: int, stop: int
    ) -> list[tuple[Block, Commit | None, LearningRecord | None]]:
        """Blocks in [start, stop) with their commits and the learning record after each, up
        to the first missing block."""

        def read() -> list[tuple[Block, Commit | None, LearningRecord | None]]:
            store = self._io.store
            rows = []
            for height in range(start, stop):
                block = store.get_block(height)
                if block is None:
                    break
                rows.append((block, store.get_commit(height), store.get_learning_record(height)))
            return rows

        return await self._io.read(read)

    async def read_blocks(self, start: int, stop: int) -> list[Block]:
        """Decoded blocks in [start, stop), up to the first missing one."""

        def read() -> list[Block]:
            blocks = []
            for height in range(start, stop):
                block = self._io.store.get_block(height)
                if block is None:
                    break
                blocks.append(block)
            return blocks

        return await self._io.read(read)


class WeightsReader:
    """Reads the weights this node stores, and says which it may serve to anyone."""

    def __init__(
        self,
        io: StoreWorker,
        is_public: Callable[[Hash], bool],
        find_parts: Callable[[Hash, float], Awaitable[PartialWeights | None]] | None = None,
    ) -> None:
        self._io = io
        self.is_public = is_public
        self._find_parts = find_parts

    async def find_parts(self, weights_hash: Hash, wait: float) -> PartialWeights | None:
        """The weights as parts to serve (node/weights/weights_parts.py), or None."""
        return None if self._find_parts is None else await self._find_parts(weights_hash, wait)

    async def read_weights_size(self, weights_hash: Hash) -> int | None:
        """The stored weights' size in bytes, or None when this node does not hold them."""
        return await self._io.read(self._io.store.weights.get_size, weights_hash)

    async def iter_weights(self, weights_hash: Hash) -> AsyncIterator[bytes]:
        """The stored weights' chunks, each read off the event loop."""
        chunks: Iterator[bytes] = self._io.store.weights.iter_chunks(weights_hash)
        while True:
            chunk: bytes | None = await self._io.read(next, chunks, None)
            if chunk is None:
                return
            yield chunk
