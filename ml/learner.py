"""A validator's learner, with colearn's four verbs: propose, evaluate, accept, current.

The learner holds the global model (the chain's current weights, as a ``TensorSource``: a state
dict in memory, or a weights file the node stores) and the node's private data. ``propose``
trains from the global weights on the training part; ``evaluate`` scores weights on the vote
part, which is never trained on. Neither changes the global model; only ``accept`` does.

One model instance does all of it: each verb loads the weights it needs into it, slice by slice,
so a learner holds one copy of the model at rest and three while training (the weights, their
gradients and SGD's momentum), whatever the number of models it scores. "Weights" are the
model's trainable tensors (``Task.trainable``); a frozen base stays in the model instance, never
loaded, copied or shared.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from learnchain.ml.codec import StateDict, compute_weights_hash
from learnchain.ml.contribution_value import compute_values_of
from learnchain.ml.data import Dataset, PartyData
from learnchain.ml.privacy import PrivacyLedger, train_model_dp
from learnchain.ml.tasks import Task
from learnchain.ml.training import Evaluation, clone_state
from learnchain.ml.vote import VoteDecision, VoteRule
from learnchain.ml.weights_file import (
    StateSource,
    TensorSource,
    WeightsLayout,
    collect_state,
    load_into,
)

MIN_VOTE_SAMPLES = 50  # below this, a party votes on all its data (see Learner.judging_data)
Weights = StateDict | TensorSource  # what the verbs take: a state dict, or any source of slices


def to_source(weights: Weights) -> TensorSource:
    """Weights as a ``TensorSource``."""
    return StateSource(weights) if isinstance(weights, dict) else weights


class Learner:
    """One party's learning state."""

    def __init__(self, task: Task, data: PartyData, seed: int = 0) -> None:
        self.task = task
        self.data = data
        self.seed = seed
        self.rule = VoteRule(task.config.metric, task.config.margin, task.config.confidence)
        self.privacy = (
            PrivacyLedger(task.config.dp_target_epsilon, task.config.dp_delta)
            if task.config.dp_noise_multiplier > 0
            else None
        )
        self.model = task.initial_model()  # the one instance every verb loads weights into
        self.trainable = task.trainable(self.model)
        shared = task.shared_state(self.model)
        self.layout = WeightsLayout.of_state(shared)
        self.base_hash = task.compute_base_hash(self.model)  # empty: nothing is frozen
        self._global: TensorSource = StateSource(clone_state(shared))
        self._judging = self.judging_data()
        self._global_evaluation: Evaluation | None = None
        self._proposals = 0

    @property
    def global_source(self) -> TensorSource:
        """The global weights, as they are held (no copy)."""
        return self._global

    def current(self) -> StateDict:
        """The global weights (a copy)."""
        return self.materialize(self._global)

    def materialize(self, weights: Weights) -> StateDict:
        """Weights as a state dict of their own (a copy)."""
        if isinstance(weights, dict):
            return clone_state(weights)
        return {
            name: weights.read_flat(name, 0, spec.numel).clone().reshape(spec.shape)
            for name, spec in self.layout.specs.items()
        }

    def current_hash(self) -> bytes:
        """The canonical hash of the global weights."""
        return compute_weights_hash(self.current())

    def accept(self, weights: Weights) -> None:
        """Make ``weights`` the global model (a state dict is copied; a source is kept)."""
        self._global = StateSource(clone_state(weights)) if isinstance(weights, dict) else weights
        self._global_evaluation = None

    def release_model(self) -> None:
        """Let the model instance go, with any frozen base in it: a learner whose training and
        evaluation run in a learner process of their own (which holds its own instance) keeps
        only the weights' layout and the global weights."""
        self.model = nn.Module()

    def load(self, weights: Weights) -> nn.Module:
        """The learner's model holding ``weights`` (loaded in place, slice by slice)."""
        load_into(self.model, to_source(weights), self.layout)
        return self.model

    def propose(self, seed: int | None = None) -> StateDict:
        """Weights trained from the global model on the private training data (a copy)."""
        return clone_state(self.train_view(seed))

    def propose_view(self, seed: int | None = None) -> StateDict:
        """``propose`` without the copy: the trained model's own tensors, valid until the
        learner's next verb (for writing them out at once)."""
        return self.train_view(seed)

    def next_seed(self) -> int:
        """The seed of this learner's next training (as ``propose`` without one would use)."""
        seed = self.seed * 1_000_003 + self._proposals
        self._proposals += 1
        return seed

    def train_view(self, seed: int | None = None) -> StateDict:
        """Train from the global weights on the training data (``training_data``); the trained
        model's own tensors (no copy)."""
        run_seed = self.seed * 1_000_003 + self._proposals if seed is None else seed
        self._proposals += 1
        train_data = self.training_data()
        if self.privacy is not None:  # Opacus hooks the module it trains: a fresh one each time
            fresh = copy.deepcopy(self.model)
            load_into(fresh, self._global, self.layout)
            model = train_model_dp(self.task, fresh, train_data, run_seed, self.privacy)
        else:
            model = self.task.train(self.load(self._global), train_data, run_seed)
        for parameter in model.parameters():
            parameter.grad = None
        state = model.state_dict()
        return {name: state[name].detach() for name in self.trainable}

    def training_data(self) -> Dataset:
        """What ``propose`` trains on (adversaries override it)."""
        return self.data.train

    @property
    def samples(self) -> int:
        """Training samples (reported with contributions)."""
        return len(self.data.train)

    def judging_data(self) -> Dataset:
        """What votes and screening score on: the vote set, or, when it holds fewer than
        ``MIN_VOTE_SAMPLES`` samples, all of this party's data. A paired test on a handful of
        samples cannot tell a poisoned model from the current one (one sample worse in six is
        within its noise); the training part adds power, and its bias (a candidate trained on it
        looks a little better there) favours honest updates, never poisoned ones."""
        vote = self.data.vote
        if len(vote) >= MIN_VOTE_SAMPLES:
            return vote
        train = self.data.train
        # the vote set first: ``vote`` scores the recorded number on that part alone
        return Dataset(np.concatenate([vote.x, train.x]), np.concatenate([vote.y, train.y]))

    def evaluate(self, weights: Weights) -> Evaluation:
        """Per-sample scores of ``weights`` on the judging data (``judging_data``)."""
        return self.task.evaluate(self.load(weights), self._judging)

    def evaluate_current(self) -> Evaluation:
        """The global model's scores on the vote set (cached until the next accept)."""
        if self._global_evaluation is None:
            self._global_evaluation = self.evaluate(self._global)
        return self._global_evaluation

    def vote(self, weights: Weights, margin: float | None = None) -> VoteDecision:
        """The vote rule's verdict on ``weights`` against the global model (on the judging
        data), with the task's score of them on the vote set alone: the number the chain
        records, never inflated by samples the model trained on. ``margin`` replaces the
        rule's (a verified aggregate is judged by ``task.verified_margin``)."""
        return self.decide(self.evaluate(weights), self.evaluate_current(), margin)

    def decide(
        self, evaluation: Evaluation, current: Evaluation, margin: float | None = None
    ) -> VoteDecision:
        """``vote`` from the evaluations of the weights and of the global model (both on the
        judging data), wherever they were made."""
        rule = self.rule if margin is None else replace(self.rule, margin=margin)
        decision = rule.decide(evaluation, current)
        on_vote_set = evaluation.head(len(self.data.vote))
        return replace(
            decision,
            score=self.task.score(on_vote_set),
            accuracy=on_vote_set.accuracy,
            loss=on_vote_set.loss,
        )

    def loss(self, weights: Weights) -> float:
        """The mean loss of ``weights`` on the judging data (contribution values)."""
        return float(self.evaluate(weights).losses.mean())

    def score(self, weights: Weights) -> float:
        """The task's score of ``weights`` on the judging data (higher is better), for
        screening contributions."""
        return self.task.score(self.evaluate(weights))

    def loss_gradient(self, weights: Weights) -> StateDict:
        """The gradient of ``loss`` at ``weights``, for each trainable tensor (a first-order
        appraisal)."""
        return self.task.loss_gradient(self.load(weights), self.judging_data(), self.trainable)

    def appraise(
        self,
        sources: Sequence[TensorSource],
        aggregated: int,
        scores: Sequence[float] | None = None,
        norms: torch.Tensor | None = None,
        reputation: bool = False,
        arrival: Sequence[float] | None = None,
    ) -> list[float]:
        """What each source is worth as a contribution to the global model, on this party's
        data (``compute_values_of``): the first ``aggregated`` ones aggregated, the rest
        screened out; ``scores`` and ``norms`` when already known; with ``reputation`` followed
        by their reputation values (§3.9); with ``arrival`` (when each reached this party) a
        copy of an earlier one is worth 0."""

        def gradient(source: TensorSource) -> TensorSource:
            return StateSource(self.loss_gradient(source))

        def materialize(slices: Iterable[torch.Tensor]) -> TensorSource:
            # the aggregate of every clipped update, in memory: one copy of the weights beside
            # the learner's own, less than training holds, read once per contribution
            return StateSource(collect_state(self.layout, slices))

        return compute_values_of(
            self._global,
            sources,
            aggregated,
            self.loss,
            self.score,
            self.task.config.harm_margin,
            self.layout,
            materialize,
            scores,
            norms,
            reputation,
            arrival,
            self.task.config.duplicate_margin,
            gradient if self.task.config.appraisal == "first_order" else None,
        )
