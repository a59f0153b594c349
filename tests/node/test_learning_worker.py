"""The node's learning worker: accepting a model is idempotent, and an early contribution trains
from the block's model in one step (it starts at this node's precommit; docs/protocol.md §3)."""

from __future__ import annotations

import asyncio

import torch

from learnchain.ml.aggregate import Contribution as MLContribution
from learnchain.ml.aggregate import aggregate_contributions
from learnchain.ml.codec import WeightsBytes
from learnchain.ml.data import load_digits_party
from learnchain.ml.learner import Learner
from learnchain.ml.tasks import TaskConfig, get_task
from learnchain.node.learning import LearningWorker, encode


def make_worker() -> LearningWorker:
    data, _ = load_digits_party(0, 5, "iid", seed=0)
    return LearningWorker(Learner(get_task(TaskConfig()), data, seed=0))


def test_accepting_the_current_model_again_changes_nothing() -> None:
    async def scenario() -> None:
        worker = make_worker()
        try:
            first = await worker.propose()
            await worker.accept(first.data)
            previous = worker._previous_global
            await worker.accept(first.data)  # e.g. the early contribution took it already
            assert worker.current_hash() == first.weights_hash
            assert worker._previous_global is previous  # server momentum still sees one step
        finally:
            worker.close()

    asyncio.run(scenario())


def test_propose_from_makes_the_block_model_global_and_trains_from_it() -> None:
    async def scenario() -> None:
        worker = make_worker()
        try:
            block_model = await worker.propose()
            contribution = await worker.propose_from(block_model.data)
            assert worker.current_hash() == block_model.weights_hash
            assert contribution.weights_hash != block_model.weights_hash
            assert encode(worker.learner.current()).weights_hash == block_model.weights_hash
            start = worker.decode(block_model.data)
            trained = worker.decode(contribution.data)
            assert any(not torch.equal(start[k], trained[k]) for k in start)
        finally:
            worker.close()

    asyncio.run(scenario())


def test_after_a_voted_down_attempt_the_next_aggregate_has_no_momentum() -> None:
    async def scenario() -> None:
        worker = make_worker()
        try:
            first = await worker.propose()
            await worker.accept(first.data)
            contribution = await worker.propose()
            inputs: list[tuple[str, WeightsBytes, int]] = [("a", contribution.data, 100)]
            with_momentum, _ = await worker.aggregate(inputs)
            worker.forget_momentum()
            plain, _ = await worker.aggregate(inputs)
            expected, _ = aggregate_contributions(
                worker.learner.current(),
                [MLContribution("a", worker.decode(contribution.data), 100)],
                worker.learner.task.config.aggregation,
            )
            assert plain.weights_hash == encode(expected).weights_hash
            assert with_momentum.weights_hash != plain.weights_hash
        finally:
            worker.close()

    asyncio.run(scenario())
