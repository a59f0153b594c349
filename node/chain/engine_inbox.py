"""The engine's inbox: events queued for the consensus driver, and word of its progress."""

from __future__ import annotations

import asyncio

from learnchain.consensus.engine import Engine
from learnchain.consensus.events import Event
from learnchain.consensus.state import ChainState


class EngineInbox:
    """Events in arrival order for one consumer; waiters learn when the engine moved on."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._progress = asyncio.Event()

    @property
    def state(self) -> ChainState:
        """The engine's current state (the last decided block's, perhaps not yet written)."""
        return self._engine.state

    def submit(self, event: Event) -> None:
        """Queue an event for the engine."""
        self._queue.put_nowait(event)

    def is_empty(self) -> bool:
        """True when no event waits."""
        return self._queue.empty()

    async def take_batch(self, limit: int) -> list[Event]:
        """The next event (waiting for one) and up to ``limit - 1`` more already queued."""
        batch = [await self._queue.get()]
        while len(batch) < limit and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    def notify_progress(self) -> None:
        """The engine handled a batch of events."""
        self._progress.set()

    async def wait_for_height(self, height: int, patience: float = 1.0) -> None:
        """Until the engine reaches ``height``, or makes no progress for ``patience`` seconds."""
        while self._engine.state.height < height:
            self._progress.clear()
            try:
                await asyncio.wait_for(self._progress.wait(), patience)
            except TimeoutError:
                return
