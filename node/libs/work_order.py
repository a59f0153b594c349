"""Which of the work waiting for one thread goes first: the round's own work before measurements
that can wait.

A validator scores and measures each contribution as it arrives, so that a block's verdict need
not. When the contributions all arrive at once (every validator trains for the same time), those
measurements queue on the learner thread in front of the proposer's aggregate, and the proposal
waits for all of them (bench/README.md, "The proposer waited for its measurements"). Work that
can wait (``deferrable``) therefore starts only while no other work waits or runs, one piece at a
time: other work then waits behind at most one piece of it, and whatever it skipped is computed
when first needed (a score or a norm is cached when made).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class WorkOrder:
    """Urgent work first, deferrable work one piece at a time when nothing urgent waits."""

    def __init__(self) -> None:
        self._urgent = 0  # urgent pieces waiting for the thread or running on it
        self._deferred_running = False
        self._changed: asyncio.Condition | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _get_condition(self) -> asyncio.Condition:
        """The condition of the running loop (a worker may outlive one loop in tests)."""
        loop = asyncio.get_running_loop()
        if self._changed is None or self._loop is not loop:
            self._changed, self._loop = asyncio.Condition(), loop
        return self._changed

    def is_idle(self) -> bool:
        """True when no work of either kind waits or runs."""
        return not self._urgent and not self._deferred_running

    @asynccontextmanager
    async def urgent(self) -> AsyncIterator[None]:
        """Hold the thread for urgent work: deferrable work waits until none is left."""
        self._urgent += 1
        try:
            yield
        finally:
            self._urgent -= 1
            if not self._urgent:
                await self._notify()

    @asynccontextmanager
    async def deferrable(self) -> AsyncIterator[None]:
        """Wait until nothing urgent waits or runs and no other deferrable piece runs."""
        condition = self._get_condition()
        async with condition:
            await condition.wait_for(self.is_idle)
            self._deferred_running = True
        try:
            yield
        finally:
            self._deferred_running = False
            await self._notify()

    async def _notify(self) -> None:
        condition = self._get_condition()
        async with condition:
            condition.notify_all()
