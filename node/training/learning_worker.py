"""The node's learning worker: the learner on private data, run off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, TypeVar

import torch

from learnchain.consensus.types import Hash
from learnchain.ml.adversaries import POISONING_ATTACKS, make_learner
from learnchain.ml.aggregate import (
    ListedSource,
    compute_update_norms,
    get_aggregation_rule,
    is_rule_aggregate_of,
    iter_aggregate,
)
from learnchain.ml.codec import StateDict
from learnchain.ml.data import describe_scaling, load_digits_party, split_train_vote
from learnchain.ml.device import LocalSettings, resolve_device
from learnchain.ml.error_feedback import ErrorFeedback
from learnchain.ml.errors import MLError, WeightsError
from learnchain.ml.learner import Learner
from learnchain.ml.tasks import TaskConfig, get_task
from learnchain.ml.training import Evaluation
from learnchain.ml.update_codec import open_contribution, parse_codec
from learnchain.ml.vote import VoteDecision
from learnchain.ml.weights_file import (
    StateSource,
    TensorSource,
    WeightsFile,
    iter_source,
    write_weights,
)
from learnchain.node.home.files import DataSource, NodeConfig
from learnchain.node.libs.memory import release_free_memory
from learnchain.node.libs.work_order import WorkOrder
from learnchain.node.store.fresh_writes import FreshWrites
from learnchain.node.store.weights_store import EncodedWeights
from learnchain.node.weights.weights_problems import WeightsProblems

T = TypeVar("T")
log = logging.getLogger("learnchain.learning")


def load_learner(
    task_config: TaskConfig,
    source: DataSource,
    seed: int,
    attack: str,
    local: LocalSettings | None = None,
) -> Learner:
    """The learner over this node's private data (and, for testing, an adversary), training
    the way ``local`` says (device, threads, pretrained base)."""
    task = get_task(task_config, local)
    if source.kind == "digits":
        data, _ = load_digits_party(source.party, source.parties, source.partition, source.seed)
    else:
        dataset = task.load_data(Path(source.path), source.label_column)
        warning = describe_scaling(dataset, task_config.feature_mean, task_config.feature_scale)
        if warning is not None:
            log.warning("%s: %s", source.path, warning)
        data = split_train_vote(dataset, seed)
    return make_learner(task, data, seed, attack or None)


def compute_local_settings(home: Path, config: NodeConfig) -> LocalSettings:
    """How this node trains, from config.toml: its device found on this machine (TaskError, one
    line, when it is not), threads, precision and pretrained file (relative ones from the
    home)."""
    pretrained = str(home / config.pretrained) if config.pretrained else ""
    return LocalSettings(
        resolve_device(config.device), config.threads, config.precision, pretrained
    )


class InitialModelMismatch(ValueError):
    """The installed task builds another initial model than the genesis names."""


def load_learning_worker(
    task_config: TaskConfig,
    source: DataSource,
    attack: str,
    genesis_model: Hash,
    files: WeightsFiles,
    local: LocalSettings | None = None,
    trainer: Trainer | None = None,
) -> LearningWorker:
    """The learning worker over this node's data, once its initial model and frozen base are
    the genesis ones (stored with the node's weights, and from then on read from there)."""
    learner = load_learner(task_config, source, source.party, attack, local)
    problem = describe_base_mismatch(learner.base_hash.hex(), task_config.base_hash)
    if problem:
        raise InitialModelMismatch(problem)
    size = learner.layout.file_size
    if size > task_config.max_weights_bytes:
        raise InitialModelMismatch(
            f"the task's initial model is {size} bytes, more than task.max_weights_bytes "
            f"({task_config.max_weights_bytes}): no node could take its weights"
        )
    worker = LearningWorker(learner, files, trainer)
    if worker.current_hash() != genesis_model:
        worker.close()
        raise InitialModelMismatch(
            "initial_model_hash does not match the task's initial model "
            "(different task, seed or software version)"
        )
    return worker


def describe_base_mismatch(own: str, pinned: str) -> str:
    """Why this node's frozen base is not the genesis's (``task.base_hash``), or ""."""
    if own == pinned:
        return ""
    if not pinned:
        return (
            "the task's model freezes a base but the genesis pins none (task.base_hash): "
            "make the chain again with this task"
        )
    if not own:
        return "the genesis pins a frozen base (task.base_hash) but the task's model freezes none"
    return (
        f"the task's frozen base hashes to {own[:16]}…, not the genesis's task.base_hash "
        f"{pinned[:16]}…: is config.toml's `pretrained` the chain's weights file?"
    )


class Trainer(Protocol):
    """The learner outside the validator's process: a supervised process, or torchrun jobs
    (each failure a TrainingFailed, an MLError)."""

    def train(self, weights: Path, seed: int, out: Path) -> Hash:
        """Train from the weights at ``weights`` with ``seed``, written to ``out``; their
        hash."""
        ...

    def evaluate(self, weights: Path, base: Path | None = None) -> Evaluation:
        """The per-sample results of the weights at ``weights`` (a contribution to the model
        at ``base``, if given) on the judging data."""
        ...

    def appraise(
        self,
        global_weights: Path,
        weights: Sequence[Path],
        aggregated: int,
        scores: Sequence[float],
        norms: Sequence[float],
        reputation: bool = False,
        arrival: Sequence[float] | None = None,
    ) -> list[float]:
        """Each of ``weights``' value as a contribution to ``global_weights`` (§3.5), followed
        by their reputation values with ``reputation`` (§3.9); with ``arrival``, a copy of one
        that arrived earlier is worth 0."""
        ...

    def close(self) -> None:
        """Stop whatever trains."""
        ...


class WeightsFiles(Protocol):
    """Where the worker writes weights (the node's weights store)."""

    def new_partial(self) -> Path:
        """A fresh path for weights being written."""
        ...

    def adopt(self, partial: Path, weights_hash: Hash) -> Path:
        """Move written weights into place under their hash."""
        ...


# The learner's verbs (function names) by the kind of work the metrics report.
WORK_KINDS = {
    "propose": "train",
    "accept_and_train": "train",
    "decide": "evaluate",
    "combine": "aggregate",
    "recompute": "aggregate",
    "measure": "value",
    "check": "check",
    "prepare": "prepare",
    "_get_score": "prepare",
    "_accept": "accept",
    "encode": "encode",
}


class LearningWorker:
    """Runs the learner's verbs in one worker thread, in order (torch is not re-entrant here).

    Weights come and go as files (``WeightsFile``: checked against the model's layout, read
    slice by slice); what the worker writes (contributions, aggregates) it writes slice by slice
    into the node's weights store, hashing as it writes. The global model is the committed
    model's file; the model before it (server momentum's last step) is that model's file."""

    def __init__(
        self, learner: Learner, files: WeightsFiles, trainer: Trainer | None = None
    ) -> None:
        self.learner = learner
        self.files = files
        self.trainer = trainer  # training in a process of its own, or here (None)
        self.layout = learner.layout
        self.max_bytes = learner.task.config.max_weights_bytes
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="learner")
        self._order = WorkOrder()  # the round's work before measurements that can wait
        # Checking arriving weights against their hash needs no learner state, so it does not
        # queue behind training.
        self._checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="weights-check")
        # the model committed before the current one (server momentum's last step), its hash,
        # and whether momentum is off until the next model (after a failed attempt)
        self._previous_global: TensorSource | None = None
        self.previous_hash: Hash | None = None
        self.momentum_forgotten = False
        self.learner_seconds = 0.0  # wall time the learner thread spent working
        # reports each piece of work: (train|evaluate|aggregate|check|accept, seconds)
        self.observe_work: Callable[[str, float], None] = lambda _work, _seconds: None
        self.checker_seconds = 0.0  # wall time the checker thread spent working
        self.problems = WeightsProblems()  # the daemon's counts them in its metrics
        # each contribution's score on this node's data and its update's norm from the global
        # model, computed as it arrives (``prepare``) so that verdicts need not (cleared when
        # the global model changes); scored on arrival only when something will read the score
        # (appraisal, a screening rule): through a large frozen base, a forward pass per
        # contribution on the round's path
        self._scores: dict[Path, float] = {}
        self._norms: dict[Path, float] = {}
        self.scores_contributions = True
        # the global model's evaluation by the learner process, under the model's hash
        self._current_evaluation: tuple[Hash, Evaluation] | None = None
        # how contributions travel (task.codec), and what this node's encodings dropped (kept
        # in a file of the store's between rounds)
        self.codec = parse_codec(learner.task.config.codec)
        self.update_layout = self.codec.compute_encoded_layout(self.layout)
        self.feedback = ErrorFeedback(self.codec, files.new_partial())
        self.fresh_writes = FreshWrites()  # kept from prunes until something names them
        torch.set_num_threads(learner.task.local.threads)
        # the initial model, written without another copy
        initial = self._write_slices(iter_source(learner.global_source, self.layout))
        self._current_hash = initial.weights_hash  # changes only in accept()
        self.current_path = initial.path
        learner.accept(self.open(initial.path))
        if trainer is not None:  # the learner process holds the model (and its frozen base)
            learner.release_model()
            release_free_memory()

    @property
    def is_poisoner(self) -> bool:
        """Testing only: this node's learner is a poisoning adversary (config ``attack``)."""
        return getattr(self.learner, "kind", None) in POISONING_ATTACKS

    @property
    def is_copycat(self) -> bool:
        """Testing only: this node is a free rider that contributes another validator's
        contribution as its own (config ``attack = "copycat"``)."""
        return getattr(self.learner, "kind", None) == "copycat"

    @property
    def busy_seconds(self) -> float:
        """Wall time spent on ML work so far (training, scoring, aggregating, checking)."""
        return self.learner_seconds + self.checker_seconds

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        async with self._order.urgent():
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, self._timed, "learner_seconds", fn, *args
            )

    async def _run_deferrable(self, fn: Callable[..., T], *args: object) -> T:
        """``fn`` on the learner thread once no other work waits for it (``WorkOrder``)."""
        async with self._order.deferrable():
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
            release_free_memory()  # large models free megabytes at a time: give them back
            cpu = round(time.thread_time() - cpu_started, 6)  # the work's own CPU, not waiting
            log.debug(
                "ml work", extra={"work": name, "started": started, "ended": ended, "cpu": cpu}
            )
            self.observe_work(WORK_KINDS.get(name, "other"), ended - started)

    def open(self, path: Path) -> WeightsFile:
        """Weights in a file, checked against the model's layout (WeightsError if not)."""
        return WeightsFile(path, self.layout, self.max_bytes)

    def open_contribution(self, path: Path) -> TensorSource:
        """The weights a contribution to the global model stands for: its file, or the global
        model plus its decoded update (``task.codec``; WeightsError when it does not fit)."""
        return open_contribution(
            path, self.learner.global_source, self.codec, self.layout, self.max_bytes
        )

    def _write_update(self, trained: TensorSource) -> EncodedWeights:
        """Store the update from the global model to ``trained`` as the codec encodes it (with
        what the last encodings dropped), hashing it on the way."""
        encoded = self.feedback.encode(trained, self.learner.global_source, self.layout)
        slices = iter_source(StateSource(encoded), self.update_layout)
        try:
            return self._store(
                lambda partial: Hash(write_weights(partial, self.update_layout, slices))
            )
        except BaseException:
            self.feedback.discard()  # no contribution was made
            raise

    def _write(self, state: StateDict) -> EncodedWeights:
        """Write ``state`` into the store, hashing it on the way."""
        return self._write_slices(iter_source(StateSource(state), self.layout))

    def _write_slices(self, slices: Iterable[torch.Tensor]) -> EncodedWeights:
        """Write weights slice by slice into the store, hashing them on the way."""
        return self._store(lambda partial: Hash(write_weights(partial, self.layout, slices)))

    def _store(self, write: Callable[[Path], Hash]) -> EncodedWeights:
        """Weights that ``write`` puts at a fresh partial path (returning their hash), kept from
        prunes and moved into the store; WeightsError when the disk refuses them (full), so that
        the round goes on without them, and nothing is left behind on any failure."""
        partial = self.files.new_partial()
        try:
            weights_hash = write(partial)
            self.fresh_writes.add(weights_hash)
            return EncodedWeights(weights_hash, self.files.adopt(partial, weights_hash))
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise WeightsError(f"cannot store weights: {error.strerror}") from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise

    def _train(self, update: bool) -> EncodedWeights:
        """Train from the global model, here or in the training process (TrainingFailed when
        that fails); stored as trained, or as an ``update`` (a contribution) in the codec's
        encoding."""
        trainer = self.trainer
        encode = update and not self.codec.sends_weights
        if trainer is None:
            trained = self.learner.propose_view()
            return self._write_update(StateSource(trained)) if encode else self._write(trained)
        seed = self.learner.next_seed()
        if not encode:
            return self._store(lambda partial: trainer.train(self.current_path, seed, partial))
        scratch = self.files.new_partial()
        try:
            trainer.train(self.current_path, seed, scratch)
            return self._write_update(self.open(scratch))
        finally:
            scratch.unlink(missing_ok=True)

    async def propose(self, update: bool = False) -> EncodedWeights:
        """Train from the global model: a solo proposal, or a contribution (``update``)."""

        def propose() -> EncodedWeights:
            return self._train(update)

        return await self._run(propose)

    async def verify(self, path: Path, weights_hash: Hash) -> bool:
        """True when the file fits the task's model and has the canonical ``weights_hash``."""

        def check() -> bool:
            layouts = [self.layout]  # a model, or a contribution in the codec's encoding
            if not self.codec.sends_weights:
                layouts.append(self.update_layout)
            for layout in layouts:
                try:
                    weights = WeightsFile(path, layout, self.max_bytes)
                    if weights.compute_hash() != weights_hash:
                        return False
                    if layout is self.update_layout:
                        self.codec.check(weights, self.layout)
                    return True
                except MLError:
                    continue
            return False

        result: bool = await asyncio.get_running_loop().run_in_executor(
            self._checker, self._timed, "checker_seconds", check
        )
        return result

    async def vote(self, path: Path, margin: float | None = None) -> VoteDecision:
        """Score proposed weights on the vote set; the rule's verdict (with ``margin`` instead
        of the rule's, for a verified aggregate)."""

        def decide() -> VoteDecision:
            return self.learner.decide(self._evaluate(path), self._evaluate_current(), margin)

        result: VoteDecision = await self._run(decide)
        return result

    def _evaluate(self, path: Path, contribution: bool = False) -> Evaluation:
        """The per-sample results of the weights at ``path`` (a ``contribution`` to the global
        model, or a model; checked against its layout here, WeightsError if not) on the judging
        data, here or in the learner process."""
        source = self.open_contribution(path) if contribution else self.open(path)
        if self.trainer is None:
            return self.learner.evaluate(source)
        return self.trainer.evaluate(path, self.current_path if contribution else None)

    def _evaluate_current(self) -> Evaluation:
        """The global model's results on the judging data (kept until the next accept)."""
        if self.trainer is None:
            return self.learner.evaluate_current()
        known = self._current_evaluation
        if known is None or known[0] != self._current_hash:
            known = self._current_evaluation = (
                self._current_hash,
                self._evaluate(self.current_path),
            )
        return known[1]

    async def accept(self, path: Path, weights_hash: Hash) -> None:
        """Make committed weights (stored under ``weights_hash``) the global model."""

        await self._run(self._accept, path, weights_hash)

    def _accept(self, path: Path, weights_hash: Hash) -> None:
        if weights_hash == self._current_hash:
            return  # already the global model (an early contribution took it before the commit)
        self._previous_global = self.learner.global_source
        self.previous_hash = self._current_hash
        self.momentum_forgotten = False
        self.feedback.settle()  # a model was committed after this node's last contribution
        self.learner.accept(self.open(path))
        self._current_hash = weights_hash
        self.current_path = path
        self._scores.clear()
        self._norms.clear()

    async def propose_from(self, path: Path, weights_hash: Hash) -> EncodedWeights:
        """Make the weights at ``path`` the global model and train from them, in one step of the
        worker (so that no other accept comes between)."""

        def accept_and_train() -> EncodedWeights:
            self._accept(path, weights_hash)
            return self._train(update=True)

        return await self._run(accept_and_train)

    def _get_score(self, path: Path) -> float:
        """A contribution's score on this node's data (WeightsError when the file does not fit
        the model)."""
        score = self._scores.get(path)
        if score is None:
            score = self.learner.task.score(self._evaluate(path, contribution=True))
            self._scores[path] = score
        return score

    def _get_norm(self, path: Path) -> float:
        """A contribution's update's norm from the global model."""
        norm = self._norms.get(path)
        if norm is None:
            source = self.open_contribution(path)
            norm = float(compute_update_norms(self.learner.global_source, [source], self.layout)[0])
            self._norms[path] = norm
        return norm

    async def prepare(self, path: Path) -> None:
        """Measure a contribution's update, and score it when this node will need the score
        (``scores_contributions``), as it arrives, while the round still trains, so that
        aggregating, checking and appraising a block need not; after any other work waiting
        for the learner (a proposal's aggregate does not wait for it: what it needs of this
        it computes)."""

        def prepare() -> None:
            with contextlib.suppress(MLError):  # reported when a block needs it
                self._get_norm(path)
                if self.scores_contributions:
                    self._get_score(path)

        await self._run_deferrable(prepare)

    def _get_norms(self, paths: Sequence[Path]) -> torch.Tensor:
        return torch.tensor([self._get_norm(path) for path in paths], dtype=torch.float64)

    @property
    def has_momentum(self) -> bool:
        """True when this node's aggregates add the server momentum (it knows the last step)."""
        return self._previous_global is not None and self.learner.task.config.server_momentum > 0

    async def aggregate(
        self, contributions: list[tuple[str, Path, int]], population: int = 0, momentum: bool = True
    ) -> tuple[EncodedWeights, list[str]]:
        """Robustly combine (contributor, weights file, samples) into one proposal, among
        ``population`` validators, slice by slice into the store; without the server momentum
        when not ``momentum``. A poisoner (testing) screens nothing out: it chose its list
        (``compute_attack_listing``)."""
        config = self.learner.task.config

        def combine() -> tuple[EncodedWeights, list[str]]:
            listed = []
            for contributor, path, samples in contributions:
                try:
                    listed.append(ListedSource(contributor, self.open_contribution(path), samples))
                except MLError as error:
                    self.problems.report("contribution", "bad_weights", f"{contributor}: {error}")
            strategy = get_aggregation_rule(config.aggregation)
            strategy.population = population
            usable = sorted((c for c in listed if c.samples > 0), key=lambda c: c.contributor)
            paths = {c: p for c, p, _ in contributions}
            if strategy.screens and not self.is_poisoner and len(usable) > 1:
                scores = [self._get_score(paths[c.contributor]) for c in usable]
                median_score = float(torch.tensor(scores).median())
                usable = [
                    c
                    for c, s in zip(usable, scores, strict=True)
                    if s >= median_score - config.screen_margin
                ]
            if not usable:
                return EncodedWeights(self._current_hash, self.current_path), []
            weights = self._write_slices(
                iter_aggregate(
                    self.learner.global_source,
                    usable,
                    strategy,
                    self.layout,
                    config.server_momentum if momentum else 0.0,
                    self._previous_global,
                    self._get_norms([paths[c.contributor] for c in usable]),
                    config.server_learning_rate,
                )
            )
            return weights, [c.contributor for c in usable]

        result: tuple[EncodedWeights, list[str]] = await self._run(combine)
        return result

    async def check_aggregate(
        self,
        path: Path,
        contributions: list[tuple[str, Path, int]],
        population: int = 0,
    ) -> bool:
        """True when proposed weights at ``path`` are the task's aggregation rule applied to
        every one of (contributor, weights file, samples) among ``population`` validators, as
        this node would have computed them (ProcessProposal re-executing the proposer's work,
        §3.7), slice by slice."""
        config = self.learner.task.config

        def recompute() -> bool:
            try:
                return is_rule_aggregate_of(
                    self.open(path),
                    self.learner.global_source,
                    [ListedSource(c, self.open_contribution(p), n) for c, p, n in contributions],
                    config.aggregation,
                    self.layout,
                    config.server_momentum,
                    self._previous_global,
                    population,
                    self._get_norms([p for _, p, _ in contributions]),
                    config.server_learning_rate,
                )
            except MLError:
                return False

        result: bool = await self._run(recompute)
        return result

    def forget_attempt(self) -> None:
        """The attempt at the next model was voted down, and every validator trains afresh from
        the same model: this node's last contribution was never applied and is trained again,
        so what its encoding dropped is carried decayed once more (``ErrorFeedback.vote_down``),
        and the next aggregate leaves out the server momentum."""
        self.feedback.vote_down()
        self.forget_momentum()

    def forget_momentum(self) -> None:
        """Aggregate without server momentum until the next model is accepted: after the
        validators voted an attempt down, pushing the same last step again would have every
        new attempt overshoot the same way (a chain stuck on one model)."""
        self._previous_global = None
        self.previous_hash = None
        self.momentum_forgotten = True

    async def restore_previous(self, previous: Hash, path: Path, current: Hash) -> None:
        """Make the file at ``path`` (the chain's model ``previous``, the one before
        ``current``, checked against its hash by the weights pool) the last step's start, when
        the learner holds ``current`` and momentum is on: after a restart or a catch-up the
        learner's own last step is not the chain's (§3.7)."""

        def restore() -> None:
            if self._current_hash != current or self.momentum_forgotten:
                return
            self._previous_global = self.open(path)
            self.previous_hash = previous

        await self._run(restore)

    async def appraise(
        self,
        contributions: list[tuple[str, Path, int]],
        screened: Sequence[tuple[str, Path, int]] = (),
        reputation: bool = False,
        arrival: Sequence[float] | None = None,
        is_wanted: Callable[[], bool] = lambda: True,
    ) -> list[float]:
        """Each (contributor, weights file, samples)'s value on this party's data
        (ml/contribution_value.py), in the order given, then each screened-out one's (with
        ``reputation``, then all of their reputation values, §3.9); with ``arrival`` (when each
        reached this node, in the same order) a copy of an earlier one is worth 0; MLError when
        one does not fit the model. Nothing once ``is_wanted`` turns false (the block was
        decided without this node's values): the contributions' scores that their measurement
        on arrival left are made one at a time, so that moot work does not hold up the next
        round's training."""
        paths = [path for _, path, _ in [*contributions, *screened]]
        for path in paths:
            if not is_wanted():
                return []
            await self._run(self._get_score, path)
        if not is_wanted():
            return []

        def measure() -> list[float]:
            scores = [self._get_score(path) for path in paths]
            norms = [self._get_norm(path) for path in paths]
            if self.trainer is not None:
                aggregated = len(contributions)
                return self.trainer.appraise(
                    self.current_path, paths, aggregated, scores, norms, reputation, arrival
                )
            sources = [self.open_contribution(path) for path in paths]
            norms_tensor = torch.tensor(norms, dtype=torch.float64)
            return self.learner.appraise(
                sources,
                len(contributions),
                scores,
                norms_tensor,
                reputation=reputation,
                arrival=arrival,
            )

        result: list[float] = await self._run(measure)
        return result

    def current_hash(self) -> Hash:
        """The global model's canonical hash."""
        return self._current_hash

    def close(self) -> None:
        """Stop the worker thread (and the training process)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._checker.shutdown(wait=False, cancel_futures=True)
        if self.trainer is not None:
            self.trainer.close()
