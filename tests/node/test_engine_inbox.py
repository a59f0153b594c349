"""The engine's inbox hands events over in order, in batches, and tells waiters when the engine
reached a height (or stopped making progress)."""

from __future__ import annotations

import asyncio
import time

from learnchain.consensus.engine import Engine
from learnchain.consensus.events import GossipTick
from learnchain.consensus.types import Height, Round
from learnchain.node.chain.engine_inbox import EngineInbox
from tests.consensus.chain import make_genesis_state, make_keys


def make_inbox() -> EngineInbox:
    return EngineInbox(Engine(make_genesis_state(make_keys(1)), None))


def test_events_come_out_in_order_and_in_batches_of_at_most_the_limit() -> None:
    async def scenario() -> list[list[int]]:
        inbox = make_inbox()
        for height in range(5):
            inbox.submit(GossipTick(Height(height), Round(0)))
        first = await inbox.take_batch(3)
        second = await inbox.take_batch(3)
        assert inbox.is_empty()
        return [[e.height for e in batch] for batch in (first, second)]  # type: ignore[union-attr]

    assert asyncio.run(scenario()) == [[0, 1, 2], [3, 4]]


def test_waiting_for_a_height_the_engine_has_reached_returns_at_once() -> None:
    async def scenario() -> float:
        inbox = make_inbox()
        started = time.monotonic()
        await inbox.wait_for_height(0)
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 0.5


def test_waiting_gives_up_when_the_engine_makes_no_progress() -> None:
    async def scenario() -> None:
        inbox = make_inbox()
        await asyncio.wait_for(inbox.wait_for_height(10, patience=0.05), 5)

    asyncio.run(scenario())
