"""Work that can wait (a contribution's measurement on arrival) never holds up the round's own
work on the learner thread: it starts only while nothing else waits or runs, one piece at a
time, so a proposal's aggregate waits behind at most one of them."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from learnchain.node.libs.work_order import WorkOrder
from learnchain.node.training.learning_worker import LearningWorker
from tests.node.workers import make_worker


async def run_on(
    executor: ThreadPoolExecutor, order: WorkOrder, name: str, done: list[str], urgent: bool
) -> None:
    """One piece of work on the thread, recorded as it finishes."""
    context = order.urgent() if urgent else order.deferrable()
    async with context:
        await asyncio.get_running_loop().run_in_executor(executor, done.append, name)


def test_urgent_work_overtakes_deferrable_work_that_waits() -> None:
    async def scenario() -> list[str]:
        order, done = WorkOrder(), list[str]()
        release = threading.Event()
        with ThreadPoolExecutor(max_workers=1) as executor:
            async with order.urgent():  # the thread is busy (training)
                blocked = asyncio.get_running_loop().run_in_executor(executor, release.wait)
                deferred = [
                    asyncio.create_task(run_on(executor, order, f"measure {i}", done, False))
                    for i in range(3)
                ]
                await asyncio.sleep(0)
                aggregate = asyncio.create_task(run_on(executor, order, "aggregate", done, True))
                await asyncio.sleep(0)
                release.set()
                await blocked
            await asyncio.gather(aggregate, *deferred)
        return done

    done = asyncio.run(scenario())
    assert done[0] == "aggregate"
    assert sorted(done[1:]) == ["measure 0", "measure 1", "measure 2"]


def test_urgent_work_waits_behind_at_most_one_deferrable_piece() -> None:
    async def scenario() -> list[str]:
        order, done = WorkOrder(), list[str]()
        with ThreadPoolExecutor(max_workers=1) as executor:
            deferred = [
                asyncio.create_task(run_on(executor, order, f"measure {i}", done, False))
                for i in range(4)
            ]
            await asyncio.sleep(0)  # the first one starts: nothing urgent waits
            aggregate = asyncio.create_task(run_on(executor, order, "aggregate", done, True))
            await asyncio.gather(aggregate, *deferred)
        return done

    done = asyncio.run(scenario())
    assert done.index("aggregate") <= 1
    assert len(done) == 5


def test_deferrable_work_runs_when_nothing_else_waits() -> None:
    async def scenario() -> list[str]:
        order, done = WorkOrder(), list[str]()
        with ThreadPoolExecutor(max_workers=1) as executor:
            await asyncio.wait_for(run_on(executor, order, "measure", done, False), 5)
        assert order.is_idle()
        return done

    assert asyncio.run(scenario()) == ["measure"]


def test_a_contributions_measurement_does_not_delay_the_workers_aggregate(tmp_path: Path) -> None:
    """On the worker itself: contributions queued for measurement while the learner trains, then
    a proposal's aggregate: the aggregate is done before the measurements."""

    async def scenario() -> list[str]:
        worker: LearningWorker = make_worker(tmp_path)
        finished: list[str] = []
        try:
            contributions = [await worker.propose() for _ in range(3)]
            training = asyncio.create_task(worker.propose())
            await asyncio.sleep(0)

            async def measure(i: int) -> None:
                await worker.prepare(contributions[i].path)
                finished.append(f"measure {i}")

            async def aggregate() -> None:
                listed = [(str(i), c.path, 10) for i, c in enumerate(contributions)]
                await worker.aggregate(listed)
                finished.append("aggregate")

            measures = [asyncio.create_task(measure(i)) for i in range(3)]
            await asyncio.sleep(0)
            combining = asyncio.create_task(aggregate())
            await asyncio.gather(training, combining, *measures)
        finally:
            worker.close()
        return finished

    finished = asyncio.run(scenario())
    assert finished[0] == "aggregate"
    assert len(finished) == 4
