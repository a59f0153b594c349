"""The node's learning worker: the learner on private data, run off the event loop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch

from learnchain.consensus.types import Hash
from learnchain.ml.adversaries import POISONING_ATTACKS, make_learner
from learnchain.ml.aggregate import Contribution as MLContribution
from learnchain.ml.aggregate import aggregate_contributions, is_rule_aggregate
from learnchain.ml.codec import (
    StateDict,
    WeightsBytes,
    compute_encoded_weights_hash,
    compute_weights_hash,
    decode_weights,
    encode_weights,
)
from learnchain.ml.contribution_value import compute_contribution_values
from learnchain.ml.data import describe_scaling, load_digits_party, split_train_vote
from learnchain.ml.errors import MLError
from learnchain.ml.learner import Learner
from learnchain.ml.tasks import TaskConfig, get_task
from learnchain.ml.vote import VoteDecision
from learnchain.node.files import DataSource

T = TypeVar("T")
log = logging.getLogger("learnchain.learning")


@dataclass(frozen=True)
class EncodedWeights:
    """Weights as they travel and are stored: canonical hash and safetensors bytes."""

    weights_hash: Hash
    data: bytes


def load_learner(task_config: TaskConfig, source: DataSource, seed: int, attack: str) -> Learner:
    """The learner over this node's private data (and, for testing, an adversary)."""
    task = get_task(task_config)
    if source.kind == "digits":
        data, _ = load_digits_party(source.party, source.parties, source.partition, source.seed)
    else:
        dataset = task.load_data(Path(source.path), source.label_column)
        warning = describe_scaling(dataset, task_config.feature_mean, task_config.feature_scale)
        if warning is not None:
            log.warning("%s: %s", source.path, warning)
        data = split_train_vote(dataset, seed)
    return make_learner(task, data, seed, attack or None)


class InitialModelMismatch(ValueError):
    """The installed task builds another initial model than the genesis names."""


def load_learning_worker(
    task_config: TaskConfig, source: DataSource, attack: str, genesis_model: Hash
) -> LearningWorker:
    """The learning worker over this node's data, once its initial model is the genesis one."""
    worker = LearningWorker(load_learner(task_config, source, source.party, attack))
    if worker.current_hash() != genesis_model:
        worker.close()
        raise InitialModelMismatch(
            "initial_model_hash does not match the task's initial model "
            "(different task, seed or software version)"
        )
    return worker


def encode(state: StateDict) -> EncodedWeights:
    """Canonical hash and bytes of a state dict."""
    return EncodedWeights(Hash(compute_weights_hash(state)), encode_weights(state))


# The learner's verbs (function names) by the kind of work the metrics report.
WORK_KINDS = {
    "propose": "train",
    "accept_and_train": "train",
    "decide": "evaluate",
    "combine": "aggregate",
    "recompute": "aggregate",
    "measure": "value",
    "check": "check",
    "_accept": "accept",
    "encode": "encode",
}


class LearningWorker:
    """Runs the learner's verbs in one worker thread, in order (torch is not re-entrant here)."""

    def __init__(self, learner: Learner) -> None:
        self.learner = learner
        self.template = learner.current()
        self.max_bytes = learner.task.config.max_weights_bytes
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="learner")
        # Checking arriving weights against their hash needs no learner state, so it does not
        # queue behind training.
        self._checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="weights-check")
        # the model committed before the current one (server momentum's last step), its hash,
        # and whether momentum is off until the next model (after a failed attempt)
        self._previous_global: StateDict | None = None
        self.previous_hash: Hash | None = None
        self.momentum_forgotten = False
        self._current_hash = Hash(learner.current_hash())  # changes only in accept()
        self.learner_seconds = 0.0  # wall time the learner thread spent working
        # reports each piece of work: (train|evaluate|aggregate|check|accept, seconds)
        self.observe_work: Callable[[str, float], None] = lambda _work, _seconds: None
        self.checker_seconds = 0.0  # wall time the checker thread spent working
        torch.set_num_threads(1)

    @property
    def is_poisoner(self) -> bool:
        """Testing only: this node's learner is a poisoning adversary (config ``attack``)."""
        return getattr(self.learner, "kind", None) in POISONING_ATTACKS

    @property
    def busy_seconds(self) -> float:
        """Wall time spent on ML work so far (training, scoring, aggregating, checking)."""
        return self.learner_seconds + self.checker_seconds

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._timed, "learner_seconds", fn, *args
        )

    def _timed(self, counter: str, fn: Callable[..., T], *args: object) -> T:
        # The monotonic clock is shared by every process on a host, so the intervals logged
        # here line up across nodes (bench/learning_round.py reads them).
        started, cpu_started = time.monotonic(), time.thread_time()
        try:
            return fn(*args)
        finally:
            ended = time.monotonic()
            setattr(self, counter, getattr(self, counter) + ended - started)
            name = getattr(fn, "__name__", "?")
            cpu = round(time.thread_time() - cpu_started, 6)  # the work's own CPU, not waiting
            log.debug(
                "ml work", extra={"work": name, "started": started, "ended": ended, "cpu": cpu}
            )
            self.observe_work(WORK_KINDS.get(name, "other"), ended - started)

    def decode(self, data: WeightsBytes) -> StateDict:
        """Checked weights (WeightsError when they do not fit the task's model)."""
        return decode_weights(data, self.template, self.max_bytes)

    async def propose(self) -> EncodedWeights:
        """Train from the global model (solo proposals and aggregate contributions)."""
        state = await self._run(self.learner.propose)
        return await self._run(encode, state)

    async def verify(self, data: WeightsBytes, weights_hash: Hash) -> bool:
        """True when ``data`` fits the task's model and has the canonical ``weights_hash``."""

        def check() -> bool:
            try:
                return (
                    compute_encoded_weights_hash(data, self.template, self.max_bytes)
                    == weights_hash
                )
            except MLError:
                return False

        result: bool = await asyncio.get_running_loop().run_in_executor(
            self._checker, self._timed, "checker_seconds", check
        )
        return result

    async def vote(self, data: WeightsBytes, margin: float | None = None) -> VoteDecision:
        """Decode and score proposed weights on the vote set; the rule's verdict (with
        ``margin`` instead of the rule's, for a verified aggregate)."""

        def decide() -> VoteDecision:
            return self.learner.vote(self.decode(data), margin)

        result: VoteDecision = await self._run(decide)
        return result

    async def accept(self, data: WeightsBytes) -> None:
        """Make committed weights the global model."""

        await self._run(self._accept, data)

    def _accept(self, data: WeightsBytes) -> None:
        state = self.decode(data)
        weights_hash = Hash(compute_weights_hash(state))
        if weights_hash == self._current_hash:
            return  # already the global model (an early contribution took it before the commit)
        self._previous_global = self.learner.current()
        self.previous_hash = self._current_hash
        self.momentum_forgotten = False
        self.learner.accept(state)
        self._current_hash = weights_hash

    async def propose_from(self, data: WeightsBytes) -> EncodedWeights:
        """Make ``data`` the global model and train from it, in one step of the worker (so that
        no other accept comes between)."""

        def accept_and_train() -> EncodedWeights:
            self._accept(data)
            return encode(self.learner.propose())

        return await self._run(accept_and_train)

    async def aggregate(
        self, contributions: list[tuple[str, WeightsBytes, int]], population: int = 0
    ) -> tuple[EncodedWeights, list[str]]:
        """Robustly combine (contributor, weights bytes, samples) into one proposal, among
        ``population`` validators. A poisoner (testing) screens nothing out: it chose its list
        (``compute_attack_listing``)."""
        config = self.learner.task.config
        screen = None if self.is_poisoner else self.learner.score

        def combine() -> tuple[EncodedWeights, list[str]]:
            decoded = []
            for contributor, data, samples in contributions:
                try:
                    decoded.append(MLContribution(contributor, self.decode(data), samples))
                except ValueError:
                    continue
            state, used = aggregate_contributions(
                self.learner.current(),
                decoded,
                config.aggregation,
                screen,
                config.screen_margin,
                momentum=config.server_momentum,
                previous_global=self._previous_global,
                population=population,
            )
            return encode(state), used

        result: tuple[EncodedWeights, list[str]] = await self._run(combine)
        return result

    async def check_aggregate(
        self,
        data: WeightsBytes,
        contributions: list[tuple[str, WeightsBytes, int]],
        population: int = 0,
    ) -> bool:
        """True when proposed weights ``data`` are the task's aggregation rule applied to every
        one of (contributor, weights bytes, samples) among ``population`` validators, as this
        node would have computed them (ProcessProposal re-executing the proposer's work, §3.7)."""
        config = self.learner.task.config

        def recompute() -> bool:
            try:
                proposed = self.decode(data)
                listed = [
                    MLContribution(contributor, self.decode(weights), samples)
                    for contributor, weights, samples in contributions
                ]
            except MLError:
                return False
            return is_rule_aggregate(
                proposed,
                self.learner.current(),
                listed,
                config.aggregation,
                config.server_momentum,
                self._previous_global,
                population,
            )

        result: bool = await self._run(recompute)
        return result

    def forget_momentum(self) -> None:
        """Aggregate without server momentum until the next model is accepted: after the
        validators voted an attempt down, pushing the same last step again would have every
        new attempt overshoot the same way (a chain stuck on one model)."""
        self._previous_global = None
        self.previous_hash = None
        self.momentum_forgotten = True

    async def restore_previous(self, previous: Hash, data: WeightsBytes, current: Hash) -> None:
        """Make ``data`` (the chain's model ``previous``, the one before ``current``, checked
        against its hash by the weights pool) the last step's start, when the learner holds
        ``current`` and momentum is on: after a restart or a catch-up the learner's own last step
        is not the chain's (§3.7)."""

        def restore() -> None:
            if self._current_hash != current or self.momentum_forgotten:
                return
            self._previous_global = self.decode(data)
            self.previous_hash = previous

        await self._run(restore)

    async def appraise(
        self,
        contributions: list[tuple[str, WeightsBytes, int]],
        screened: Sequence[tuple[str, WeightsBytes, int]] = (),
    ) -> list[float]:
        """Each (contributor, weights bytes, samples)'s value on this party's data
        (ml/contribution_value.py), in the order given, then each screened-out one's; MLError
        when one does not decode."""

        def measure() -> list[float]:
            decoded, left_out = (
                [
                    MLContribution(contributor, self.decode(data), samples)
                    for contributor, data, samples in group
                ]
                for group in (contributions, screened)
            )
            return compute_contribution_values(
                self.learner.current(),
                decoded,
                self.learner.loss,
                self.learner.score,
                self.learner.task.config.harm_margin,
                left_out,
            )

        result: list[float] = await self._run(measure)
        return result

    def current_hash(self) -> Hash:
        """The global model's canonical hash."""
        return self._current_hash

    def current_encoded(self) -> EncodedWeights:
        """The global model, encoded."""
        return encode(self.learner.current())

    def close(self) -> None:
        """Stop the worker thread."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._checker.shutdown(wait=False, cancel_futures=True)
