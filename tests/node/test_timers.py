"""The engine's timers: a timeout or gossip tick of an earlier height or round, which the engine
would ignore, is cancelled when one for a later (height, round) is scheduled, so a node catching
up many heights keeps no timer per height."""

from __future__ import annotations

import asyncio

from learnchain.consensus.events import Event, GossipTick, TimeoutFired
from learnchain.consensus.types import Height, Round, Step
from learnchain.node.chain.timers import Timers


def run_timers(
    schedule: list[tuple[int, int, int, Event]], wait_ms: int
) -> tuple[list[Event], int]:
    """The events submitted within ``wait_ms`` of scheduling, and the timers still pending."""
    submitted: list[Event] = []

    async def scenario() -> int:
        timers = Timers(submitted.append)
        for height, round_, delay, event in schedule:
            timers.schedule(Height(height), Round(round_), delay, event)
        pending = timers.pending
        await asyncio.sleep(wait_ms / 1000)
        return pending

    return submitted, asyncio.run(scenario())


def test_a_later_height_cancels_the_timers_of_earlier_ones() -> None:
    schedule: list[tuple[int, int, int, Event]] = [
        (h, 0, 30, TimeoutFired(Height(h), Round(0), Step.PROPOSE)) for h in range(1, 1001)
    ]
    submitted, pending = run_timers(schedule, wait_ms=200)
    assert pending == 1
    assert submitted == [TimeoutFired(Height(1000), Round(0), Step.PROPOSE)]


def test_timers_of_the_same_round_all_fire_in_order() -> None:
    propose = TimeoutFired(Height(5), Round(1), Step.PROPOSE)
    tick = GossipTick(Height(5), Round(1))
    prevote = TimeoutFired(Height(5), Round(1), Step.PREVOTE)
    submitted, pending = run_timers(
        [(5, 1, 40, propose), (5, 1, 10, tick), (5, 1, 60, prevote)], 150
    )
    assert pending == 3
    assert submitted == [tick, propose, prevote]


def test_a_later_round_cancels_the_earlier_rounds_timers_but_not_a_later_ones() -> None:
    late = TimeoutFired(Height(7), Round(2), Step.PRECOMMIT)
    submitted, _ = run_timers(
        [
            (7, 0, 10, TimeoutFired(Height(7), Round(0), Step.PROPOSE)),
            (7, 2, 20, late),
            (7, 1, 10, GossipTick(Height(7), Round(1))),  # older than what is pending: kept
        ],
        100,
    )
    assert submitted == [GossipTick(Height(7), Round(1)), late]
