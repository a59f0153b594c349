"""Byzantine parties for tests, benchmarks and demos.

Poisoners: ``label_flip`` trains on wrongly labelled data; ``random`` sends random weights;
``nan`` sends weights full of NaN; ``scaled`` is a model-replacement attack that boosts a
label-flipped update by the number of parties so that it survives averaging. ``approve_all``
trains honestly but approves every proposal.
"""

from __future__ import annotations

import torch

from learnchain.ml.codec import StateDict
from learnchain.ml.data import Dataset, PartyData
from learnchain.ml.learner import Learner
from learnchain.ml.tasks import Task
from learnchain.ml.vote import VoteDecision

ATTACKS = ("label_flip", "random", "nan", "scaled", "approve_all")
POISONING_ATTACKS = ("label_flip", "random", "nan", "scaled")


class ByzantineLearner(Learner):
    """A learner that proposes and contributes poison, or approves everything."""

    def __init__(
        self, task: Task, data: PartyData, kind: str, seed: int = 0, boost: float = 5.0
    ) -> None:
        if kind not in ATTACKS:
            raise ValueError(f"unknown attack {kind!r}; choose from {', '.join(ATTACKS)}")
        super().__init__(task, data, seed)
        self.kind = kind
        self.boost = boost

    def training_data(self) -> Dataset:
        if self.kind in ("label_flip", "scaled"):
            train = self.data.train
            return Dataset(train.x, (self.task.classes - 1 - train.y).astype(train.y.dtype))
        return self.data.train

    def propose(self, seed: int | None = None) -> StateDict:
        if self.kind == "random":
            generator = torch.Generator().manual_seed(self.seed + self._proposals)
            self._proposals += 1
            return {
                k: torch.randn(v.shape, generator=generator, dtype=v.dtype)
                for k, v in self.current().items()
            }
        if self.kind == "nan":
            self._proposals += 1
            return {k: torch.full_like(v, float("nan")) for k, v in self.current().items()}
        trained = super().propose(seed)
        if self.kind == "scaled":
            base = self.current()
            return {k: base[k] + self.boost * (trained[k] - base[k]) for k in trained}
        return trained

    def vote(self, state: StateDict) -> VoteDecision:
        if self.kind == "approve_all":
            return VoteDecision(True, 0.0, 0.0, len(self.data.vote))
        return super().vote(state)


def make_learner(task: Task, data: PartyData, seed: int, attack: str | None) -> Learner:
    """An honest learner, or a byzantine one for ``attack``."""
    return (
        Learner(task, data, seed) if attack is None else ByzantineLearner(task, data, attack, seed)
    )
