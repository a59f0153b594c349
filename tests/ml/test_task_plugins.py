"""A task is found by its registered name, an installed entry point (``learnchain.tasks``) or
``module:Class``, and is a Task subclass; anything else is one clear error."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import pytest
from torch import nn

from learnchain.ml.config import TaskConfig
from learnchain.ml.errors import TaskError
from learnchain.ml.tasks import Task, find_task_class, get_task


class SmallTask(Task):
    """A user's task: one linear layer."""

    def build_model(self) -> nn.Module:
        return nn.Linear(self.features, self.classes)


def test_a_task_is_found_by_module_and_class() -> None:
    task = get_task(TaskConfig(name="tests.ml.test_task_plugins:SmallTask", features=5))
    assert isinstance(task, SmallTask)
    assert task.initial_model().weight.shape == (10, 5)


def test_a_task_is_found_by_an_installed_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    point = importlib.metadata.EntryPoint(
        name="small", value="tests.ml.test_task_plugins:SmallTask", group="learnchain.tasks"
    )

    def entry_points(**selection: Any) -> importlib.metadata.EntryPoints:
        matches = point.matches(**selection)
        return importlib.metadata.EntryPoints([point] if matches else [])

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    assert isinstance(get_task(TaskConfig(name="small")), SmallTask)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nothing-by-this-name", "unknown task 'nothing-by-this-name'"),
        ("no_such_module_here:Task", "cannot import no_such_module_here"),
        ("tests.ml.test_task_plugins:Missing", "has no Missing"),
        ("tests.ml.test_task_plugins:SmallTask.build_model", "unknown task"),
        ("json:dumps", "not a subclass of learnchain.ml.tasks.Task"),
    ],
)
def test_a_task_that_cannot_be_found_is_one_clear_error(name: str, message: str) -> None:
    with pytest.raises(TaskError, match=message):
        find_task_class(name)


def test_the_regression_task_learns_a_linear_target_in_its_own_units() -> None:
    import numpy as np

    from learnchain.ml.data import Dataset

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3)).astype(np.float32) * np.array([1.0, 10.0, 100.0], np.float32)
    y = (300 + 5 * x[:, 0] + 0.5 * x[:, 1] - 0.05 * x[:, 2]).astype(np.float32)
    config = TaskConfig(
        name="tabular-regression",
        features=3,
        classes=1,
        local_epochs=30,
        learning_rate=0.01,
        feature_mean=[float(v) for v in x.mean(axis=0)],
        feature_scale=[float(v) for v in x.std(axis=0)],
        params={"target_mean": float(y.mean()), "target_scale": float(y.std())},
    )
    task = get_task(config)
    data = Dataset(x, y)
    before = task.evaluate(task.initial_model(), data).loss
    after = task.evaluate(task.train(task.initial_model(), data, seed=0), data).loss
    assert after < 0.05 * before
    assert after < 0.1 * float(y.var())  # explains over 90 % of the variance
