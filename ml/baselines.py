"""What collective learning is compared with: each party alone, and all data pooled.

Both are scored on the same held-out test set as the shared model.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from learnchain.ml.data import Dataset, PartyData
from learnchain.ml.tasks import Task

LOCAL_ONLY_EPOCHS = 50
POOLED_EPOCHS = 40


def compute_local_only_accuracies(
    task: Task, parties: list[PartyData], test: Dataset, seed: int, epochs: int = LOCAL_ONLY_EPOCHS
) -> list[float]:
    """Test accuracy (by the task's evaluation) of each party trained alone on its own
    training part."""
    return [
        task.evaluate(task.train(task.initial_model(), p.train, seed, epochs), test).accuracy
        for p in parties
    ]


def compute_pooled_model(
    task: Task, parties: list[PartyData], seed: int, epochs: int = POOLED_EPOCHS
) -> nn.Module:
    """One model trained on every party's training part together."""
    pooled = Dataset(
        np.concatenate([p.train.x for p in parties]), np.concatenate([p.train.y for p in parties])
    )
    return task.train(task.initial_model(), pooled, seed, epochs)


def compute_pooled_accuracy(
    task: Task, parties: list[PartyData], test: Dataset, seed: int, epochs: int = POOLED_EPOCHS
) -> float:
    """Test accuracy (by the task's evaluation) of one model trained on every party's training
    part together."""
    return task.evaluate(compute_pooled_model(task, parties, seed, epochs), test).accuracy
