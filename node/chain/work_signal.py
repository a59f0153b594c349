"""Tells a waiting engine when its height has something to decide (no empty blocks).

CometBFT's ``create_empty_blocks = false``: after a decision the engine waits (``AwaitWork``)
until the mempool holds a transaction, the learning round is ready, or the empty-block interval
has passed; then ``WorkReady`` starts the height's first round.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from learnchain.consensus.events import WorkReady
from learnchain.consensus.types import Height


class WorkSignal:
    """Watches the sources of work for the height the engine waits at."""

    def __init__(
        self,
        submit: Callable[[WorkReady], None],
        sources: Sequence[Callable[[], bool]],
        interval: float = 0.0,
    ) -> None:
        self._submit = submit
        self._sources = list(sources)
        self._interval = interval  # seconds; 0: never make an empty block
        self._waiting: Height | None = None
        self._timer: asyncio.TimerHandle | None = None

    def add_source(self, source: Callable[[], bool]) -> None:
        """Another place work can come from."""
        self._sources.append(source)

    def await_work(self, height: Height) -> None:
        """The engine waits at ``height``: report work as soon as there is some."""
        self._waiting = height
        if self._interval > 0:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._interval, self._fire, height)
        self.check()

    def check(self) -> None:
        """Something changed (a transaction, a contribution, a trained update): look again."""
        if self._waiting is not None and any(source() for source in self._sources):
            self._fire(self._waiting)

    def _fire(self, height: Height) -> None:
        if self._waiting != height:
            return
        self._waiting = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._submit(WorkReady(height))

    def close(self) -> None:
        """Stop the interval timer."""
        if self._timer is not None:
            self._timer.cancel()
