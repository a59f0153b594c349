"""The block executor: writes decided blocks durably, then tells the listeners.

A block, its commit and the state after it go into one sync write batch. Blocks decided in one
batch of events (catch-up) share a write; the writes run on the store thread in order, and each
block's listeners hear of it only once it is on disk.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from learnchain.consensus.events import CommitBlock
from learnchain.consensus.state import ChainState
from learnchain.node.store.store_worker import StoreWorker

CommitListener = Callable[[CommitBlock, ChainState], object]  # what it returns is ignored
"""Called with a written block's action and the state before it."""


class BlockExecutor:
    """Decided blocks in, durable blocks and commit notifications out."""

    def __init__(self, io: StoreWorker, committed: ChainState) -> None:
        self._io = io
        self.committed = committed  # the state of the last block written to the store
        self._listeners: list[CommitListener] = []
        self._pending: list[CommitBlock] = []
        self._writes: deque[tuple[asyncio.Future[list[int]], list[CommitBlock]]] = deque()
        self.block_bytes = 0  # the encoded size of the block the listeners are hearing of

    def add_listener(self, listener: CommitListener) -> None:
        """Tell ``listener`` of every block once it is written, in the order added."""
        self._listeners.append(listener)

    def decide(self, action: CommitBlock) -> None:
        """A block the engine decided: written by the next ``start_writing``."""
        self._pending.append(action)

    def start_writing(self) -> None:
        """Write the blocks decided so far in one sync batch, behind any write in flight."""
        if not self._pending:
            return
        decided, self._pending = self._pending, []
        blocks = [(a.block, a.commit) for a in decided]
        learning = [a.state.learning for a in decided]
        write = asyncio.ensure_future(
            self._io.run(self._io.store.save_blocks, blocks, decided[-1].state, learning)
        )
        self._writes.append((write, decided))

    async def finish_writes(self, keep_one: bool = False) -> None:
        """Wait for the writes in flight, oldest first (all but the newest if ``keep_one``), and
        tell the listeners of each block once it is on disk. A failed write raises."""
        while len(self._writes) > (1 if keep_one else 0):
            write, decided = self._writes[0]
            sizes = await write
            self._writes.popleft()
            for action, size in zip(decided, sizes, strict=True):
                previous, self.committed = self.committed, action.state
                self.block_bytes = size
                for listener in self._listeners:
                    listener(action, previous)

    async def write_all(self) -> None:
        """Write every decided block and wait until all are on disk."""
        self.start_writing()
        await self.finish_writes()
