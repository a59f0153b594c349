"""A validator's learner, with colearn's four verbs: propose, evaluate, accept, current.

The learner holds the global model (the chain's current weights) and the node's private data.
``propose`` trains a copy from the global weights on the training part; ``evaluate`` scores
weights on the vote part, which is never trained on. Neither changes the global model; only
``accept`` does.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from learnchain.ml.codec import StateDict, compute_weights_hash
from learnchain.ml.data import Dataset, PartyData
from learnchain.ml.privacy import PrivacyLedger, train_model_dp
from learnchain.ml.tasks import Task
from learnchain.ml.training import Evaluation, clone_state, evaluate_state, load_model
from learnchain.ml.vote import VoteDecision, VoteRule

MIN_VOTE_SAMPLES = 50  # below this, a party votes on all its data (see Learner.judging_data)


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
        self._global = clone_state(task.initial_model().state_dict())
        self._judging = self.judging_data()
        self._global_evaluation: Evaluation | None = None
        self._proposals = 0

    def current(self) -> StateDict:
        """The global weights (a copy)."""
        return clone_state(self._global)

    def current_hash(self) -> bytes:
        """The canonical hash of the global weights."""
        return compute_weights_hash(self._global)

    def accept(self, state: StateDict) -> None:
        """Make ``state`` the global model."""
        self._global = clone_state(state)
        self._global_evaluation = None

    def propose(self, seed: int | None = None) -> StateDict:
        """Weights trained from the global model on the private training data."""
        model = load_model(self.task, self._global)
        run_seed = self.seed * 1_000_003 + self._proposals if seed is None else seed
        self._proposals += 1
        train_data = self.training_data()
        if self.privacy is not None:
            model = train_model_dp(self.task, model, train_data, run_seed, self.privacy)
        else:
            model = self.task.train(model, train_data, run_seed)
        return clone_state(model.state_dict())

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

    def evaluate(self, state: StateDict) -> Evaluation:
        """Per-sample scores of ``state`` on the judging data (``judging_data``)."""
        return evaluate_state(self.task, state, self._judging)

    def evaluate_current(self) -> Evaluation:
        """The global model's scores on the vote set (cached until the next accept)."""
        if self._global_evaluation is None:
            self._global_evaluation = self.evaluate(self._global)
        return self._global_evaluation

    def vote(self, state: StateDict, margin: float | None = None) -> VoteDecision:
        """The vote rule's verdict on ``state`` against the global model (on the judging
        data), with the task's score of ``state`` on the vote set alone: the number the chain
        records, never inflated by samples the model trained on. ``margin`` replaces the
        rule's (a verified aggregate is judged by ``task.verified_margin``)."""
        evaluation = self.evaluate(state)
        rule = self.rule if margin is None else replace(self.rule, margin=margin)
        decision = rule.decide(evaluation, self.evaluate_current())
        on_vote_set = evaluation.head(len(self.data.vote))
        return replace(
            decision,
            score=self.task.score(on_vote_set),
            accuracy=on_vote_set.accuracy,
            loss=on_vote_set.loss,
        )

    def loss(self, state: StateDict) -> float:
        """The mean loss of ``state`` on the judging data (contribution values)."""
        return float(self.evaluate(state).losses.mean())

    def score(self, state: StateDict) -> float:
        """The task's score of ``state`` on the judging data (higher is better), for
        screening contributions."""
        return self.task.score(self.evaluate(state))
