"""A learning worker over digits in a weights store of its own, for the worker's tests."""

from __future__ import annotations

from pathlib import Path

from learnchain.ml.data import load_digits_party
from learnchain.ml.learner import Learner
from learnchain.ml.tasks import TaskConfig, get_task
from learnchain.node.store.weights_store import WeightsStore
from learnchain.node.training.learning_worker import LearningWorker


def make_worker(folder: Path, config: TaskConfig | None = None) -> LearningWorker:
    """A worker whose learner holds party 0 of five of digits (IID), seed 0."""
    data, _ = load_digits_party(0, 5, "iid", seed=0)
    task = get_task(config or TaskConfig())
    return LearningWorker(Learner(task, data, seed=0), WeightsStore(folder))
