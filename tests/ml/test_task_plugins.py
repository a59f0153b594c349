"""A task is found by its registered name, an installed entry point (``learnchain.tasks``) or
``module:Class``, and is a Task subclass; anything else is one clear error."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import pytest
from torch import nn

from ml.config import TaskConfig
from ml.errors import TaskError
from ml.tasks import Task, find_task_class, get_task


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
        ("json:dumps", "not a subclass of ml.tasks.Task"),
    ],
)
def test_a_task_that_cannot_be_found_is_one_clear_error(name: str, message: str) -> None:
    with pytest.raises(TaskError, match=message):
        find_task_class(name)
