"""The node's learning worker: accepting a model is idempotent, an early contribution trains
from the block's model in one step (it starts at this node's precommit; docs/protocol.md §3),
and weights come and go as files in the weights store, read and written slice by slice, with the
same results as the rule on state dicts in memory."""

from __future__ import annotations

import asyncio
from pathlib import Path

import torch

from learnchain.ml.aggregate import Contribution as MLContribution
from learnchain.ml.aggregate import aggregate_contributions
from learnchain.ml.codec import compute_weights_hash
from learnchain.ml.data import load_digits_party
from learnchain.ml.learner import Learner
from learnchain.ml.tasks import TaskConfig, get_task
from learnchain.node.store.weights_store import WeightsStore
from learnchain.node.training.learning_worker import LearningWorker
from tests.node.workers import make_worker


def test_the_genesis_model_is_stored_as_a_file_under_its_hash(tmp_path: Path) -> None:
    worker = make_worker(tmp_path)
    try:
        initial = worker.current_hash()
        assert worker.current_path == tmp_path / f"{initial.hex()}.safetensors"
        assert compute_weights_hash(worker.learner.current()) == initial
    finally:
        worker.close()


def test_accepting_the_current_model_again_changes_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        worker = make_worker(tmp_path)
        try:
            first = await worker.propose()
            await worker.accept(first.path, first.weights_hash)
            previous = worker._previous_global
            await worker.accept(first.path, first.weights_hash)  # e.g. the early contribution
            assert worker.current_hash() == first.weights_hash
            assert worker._previous_global is previous  # server momentum still sees one step
        finally:
            worker.close()

    asyncio.run(scenario())


def test_propose_from_makes_the_block_model_global_and_trains_from_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        worker = make_worker(tmp_path)
        try:
            block_model = await worker.propose()
            contribution = await worker.propose_from(block_model.path, block_model.weights_hash)
            assert worker.current_hash() == block_model.weights_hash
            assert contribution.weights_hash != block_model.weights_hash
            assert compute_weights_hash(worker.learner.current()) == block_model.weights_hash
            start = worker.open(block_model.path)
            trained = worker.open(contribution.path)
            assert any(not torch.equal(start.read(k), trained.read(k)) for k in worker.layout.names)
        finally:
            worker.close()

    asyncio.run(scenario())


def test_after_a_voted_down_attempt_the_next_aggregate_has_no_momentum(tmp_path: Path) -> None:
    async def scenario() -> None:
        worker = make_worker(tmp_path)
        try:
            first = await worker.propose()
            await worker.accept(first.path, first.weights_hash)
            contribution = await worker.propose()
            inputs = [("a", contribution.path, 100)]
            with_momentum, _ = await worker.aggregate(inputs)
            assert worker.has_momentum
            asked_without, _ = await worker.aggregate(inputs, momentum=False)
            worker.forget_momentum()
            assert not worker.has_momentum
            plain, _ = await worker.aggregate(inputs)
            assert asked_without.weights_hash == plain.weights_hash  # as a restarted proposer
            expected, _ = aggregate_contributions(
                worker.learner.current(),
                [
                    MLContribution(
                        "a", worker.learner.materialize(worker.open(contribution.path)), 100
                    )
                ],
                worker.learner.task.config.aggregation,
            )
            assert plain.weights_hash == compute_weights_hash(expected)
            assert with_momentum.weights_hash != plain.weights_hash
            assert await worker.check_aggregate(plain.path, inputs)
            assert not await worker.check_aggregate(first.path, inputs)  # the model unchanged
        finally:
            worker.close()

    asyncio.run(scenario())


def test_weights_whose_hash_or_shape_is_wrong_do_not_verify(tmp_path: Path) -> None:
    async def scenario() -> None:
        worker = make_worker(tmp_path)
        try:
            trained = await worker.propose()
            assert await worker.verify(trained.path, trained.weights_hash)
            assert not await worker.verify(trained.path, worker.current_hash())
            truncated = tmp_path / "truncated.safetensors"
            truncated.write_bytes(trained.path.read_bytes()[:-4])
            assert not await worker.verify(truncated, trained.weights_hash)
        finally:
            worker.close()

    asyncio.run(scenario())


def test_with_a_codec_contributions_travel_as_encoded_updates_and_aggregate_exactly(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        data, _ = load_digits_party(0, 5, "iid", seed=0)
        config = TaskConfig(codec="int8")
        maker = LearningWorker(
            Learner(get_task(config), data, seed=0), WeightsStore(tmp_path / "a")
        )
        other = LearningWorker(
            Learner(get_task(config), data, seed=1), WeightsStore(tmp_path / "b")
        )
        try:
            solo = await maker.propose()  # a solo proposal is a model: whole weights
            assert maker.open(solo.path).compute_hash() == solo.weights_hash
            contributions = [await maker.propose(update=True) for _ in range(2)]
            for c in contributions:  # the encoded update, about a quarter of the weights' bytes
                assert c.path.stat().st_size * 3.5 < solo.path.stat().st_size
                assert await other.verify(c.path, c.weights_hash)
                assert not await other.verify(c.path, solo.weights_hash)
            inputs = [(str(i), c.path, 100) for i, c in enumerate(contributions)]
            proposed, used = await maker.aggregate(inputs)
            assert used == ["0", "1"]
            assert await other.check_aggregate(proposed.path, inputs)  # re-computed to the bit
            decoded = [
                MLContribution(
                    str(i), maker.learner.materialize(maker.open_contribution(c.path)), 100
                )
                for i, c in enumerate(contributions)
            ]
            expected, _ = aggregate_contributions(
                maker.learner.current(), decoded, config.aggregation
            )
            assert proposed.weights_hash == compute_weights_hash(expected)
            # the update is what was trained, to int8 rounding: the model moved
            moved = decoded[0].state
            assert any(not torch.equal(moved[k], maker.learner.current()[k]) for k in moved)
            assert maker.feedback.pending  # what the encoding dropped, until a commit
        finally:
            maker.close()
            other.close()

    asyncio.run(scenario())


def test_an_appraisal_no_longer_wanted_stops_between_scores(tmp_path: Path) -> None:
    """A block decided without this node's values: its appraisal stops at the next score, and
    the learner thread is free for the next round's training."""

    async def scenario() -> tuple[list[float], list[float], int]:
        worker = make_worker(tmp_path)
        try:
            made = [await worker.propose() for _ in range(3)]
            contributions = [(str(i), c.path, 10) for i, c in enumerate(made)]
            asked = 0

            def is_wanted() -> bool:
                nonlocal asked
                asked += 1
                return asked < 2  # decided while the first score was made

            stopped = await worker.appraise(contributions, is_wanted=is_wanted)
            scored = len(worker._scores)
            values = await worker.appraise(contributions)
        finally:
            worker.close()
        return stopped, values, scored

    stopped, values, scored = asyncio.run(scenario())
    assert stopped == []
    assert scored == 1
    assert len(values) == 3


def test_a_contributions_residue_waits_in_a_file_after_a_commit_and_decays_after_a_failed_attempt(
    tmp_path: Path,
) -> None:
    """Error feedback (§3.8): what a contribution's encoding dropped is carried by the next
    contribution, from a file of the store's once a model was committed after it, and decayed
    once more after a voted-down attempt (held in memory until the next commit)."""

    async def scenario() -> None:
        worker = make_worker(tmp_path, TaskConfig(codec="topk:0.01"))
        feedback = worker.feedback
        assert feedback.path is not None and feedback.path.parent == tmp_path / "partial"
        try:
            committed = await worker.propose()  # weights to commit later
            await worker.propose(update=True)
            assert feedback.pending and not feedback.path.exists()
            worker.forget_attempt()  # voted down: every validator trains afresh
            assert not worker.has_momentum
            assert feedback.residue and not feedback.pending and not feedback.path.exists()
            assert feedback.carried_share == worker.codec.feedback_decay < 1
            await worker.propose(update=True)  # the new attempt, which commits
            await worker.accept(committed.path, committed.weights_hash)
            assert feedback.path.exists() and not feedback.residue and not feedback.pending
            assert feedback.carried_share == 1
        finally:
            worker.close()

    asyncio.run(scenario())
