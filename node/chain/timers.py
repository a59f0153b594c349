"""The engine's timers: timeouts and gossip ticks, put into the inbox when they fire.

The engine ignores a timeout or tick of an earlier height or round (Algorithm 1, lines 57, 61
and 65 check ``h_p`` and ``round_p``), so scheduling one for a later (height, round) cancels
every pending one of earlier rounds. A node catching up thousands of heights a second would
otherwise keep one timer per height in the event loop, and take them all as stale events later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from learnchain.consensus.events import Event
from learnchain.consensus.types import Height, Round


class Timers:
    """Pending timer events, at most those of the latest (height, round) scheduled."""

    def __init__(self, submit: Callable[[Event], None]) -> None:
        self._submit = submit
        self._pending: list[tuple[tuple[Height, Round], asyncio.TimerHandle]] = []

    def schedule(self, height: Height, round_: Round, delay_ms: int, event: Event) -> None:
        """Submit ``event`` after ``delay_ms``; cancel what is pending for earlier rounds."""
        loop = asyncio.get_running_loop()
        now, at = loop.time(), (height, round_)
        kept = []
        for when, handle in self._pending:
            if when < at:
                handle.cancel()
            elif handle.when() > now:  # not fired yet
                kept.append((when, handle))
        kept.append((at, loop.call_later(delay_ms / 1000, self._submit, event)))
        self._pending = kept

    @property
    def pending(self) -> int:
        """How many timers are pending."""
        return sum(1 for _, handle in self._pending if not handle.cancelled())
