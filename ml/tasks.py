"""Learning tasks named in the genesis. Adding a task is one registered class.

A task fixes the model architecture, its hyperparameters, the data kind and the vote rule's
metric and margin. Every node builds the same initial model from the genesis seed, so the genesis
model hash is the same everywhere.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import nn

from ml.config import AGGREGATIONS, METRICS, TASK_NAMES, TaskConfig
from ml.data import DIGITS_CLASSES, DIGITS_FEATURES

__all__ = ["AGGREGATIONS", "METRICS", "TASKS", "Task", "TaskConfig", "get_task", "register_task"]


class Task(ABC):
    """A model architecture and how its inputs are shaped."""

    name: ClassVar[str]

    def __init__(self, config: TaskConfig) -> None:
        config.validate()
        self.config = config

    @property
    def features(self) -> int:
        """Input features per sample."""
        return DIGITS_FEATURES

    @property
    def classes(self) -> int:
        """Number of labels."""
        return DIGITS_CLASSES

    @abstractmethod
    def build_model(self) -> nn.Module:
        """A freshly initialised model (uses torch's global RNG; see ``initial_model``)."""

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Rows of features to the model's input shape."""
        return x

    def initial_model(self) -> nn.Module:
        """The genesis model: the same on every machine for the same seed."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            model = self.build_model()
        return model.eval()


TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make a task available by its ``name``."""
    TASKS[cls.name] = cls
    TASK_NAMES.add(cls.name)
    return cls


def get_task(config: TaskConfig) -> Task:
    """The task the config names."""
    config.validate()
    return TASKS[config.name](config)


def _mlp(features: int, hidden: int, classes: int) -> nn.Module:
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, classes))


@register_task
class DigitsMLP(Task):
    """A one-hidden-layer perceptron on the 8x8 digits."""

    name = "digits-mlp"

    def build_model(self) -> nn.Module:
        return _mlp(DIGITS_FEATURES, self.config.hidden, DIGITS_CLASSES)


@register_task
class DigitsCNN(Task):
    """A small convolutional network on the 8x8 digits."""

    name = "digits-cnn"

    def build_model(self) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 2 * 2, DIGITS_CLASSES),
        )

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1, 1, 8, 8)


@register_task
class TabularMLP(Task):
    """A perceptron for an operator's own tabular file (features and classes from the task)."""

    name = "tabular-mlp"

    @property
    def features(self) -> int:
        return self.config.features

    @property
    def classes(self) -> int:
        return self.config.classes

    def build_model(self) -> nn.Module:
        return _mlp(self.config.features, self.config.hidden, self.config.classes)
