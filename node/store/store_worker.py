"""The store's worker threads: LevelDB never runs on the event loop.

One thread writes blocks, weights and reads in order (so a block is never written before the
weights it names, which were queued first); the sign state has its own thread, so a vote never
queues behind large weights.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from learnchain.consensus.events import SignState
from learnchain.node.store.store import Store

T = TypeVar("T")


class StoreWorker:
    """Runs Store calls off the event loop, in order."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._sign_io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sign-state")
        # Queries read committed data on their own thread, never queued behind large writes.
        self._reads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-reads")

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` on the store thread, behind every call queued before it."""
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    async def read(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` on the read thread (for queries of committed data)."""
        return await asyncio.get_running_loop().run_in_executor(self._reads, fn, *args)

    async def save_sign_state(self, sign_state: SignState) -> None:
        """Persist the sign state (sync) on its own thread."""
        await asyncio.get_running_loop().run_in_executor(
            self._sign_io, self.store.save_sign_state, sign_state
        )

    def close(self) -> None:
        """Finish the queued calls and close the database."""
        self._io.shutdown(wait=True)
        self._reads.shutdown(wait=True)
        self._sign_io.shutdown(wait=True)
        self.store.close()
