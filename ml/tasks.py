"""Learning tasks named in the genesis: a user's model, training and evaluation, as small as
Flower's client.

A task is a subclass of ``Task``: it must build its model and may override how it trains
(``train``), how it evaluates (``evaluate``: per-sample correctness and loss, which the vote rule
compares, and ``score``, the number the chain records), how it reads a data file (``load_data``)
and which tensors train (``trainable``: by default the parameters that require gradients when
some are frozen, else the whole state dict). Every node builds the same initial model from the
genesis seed, so the genesis model hash is the same everywhere; a node whose installed task
builds another refuses to start. A frozen base (a pretrained network under adapters) is pinned
by its hash in the genesis (``task.base_hash``); ``load_pretrained`` reads it from the node's
``pretrained`` file.

A task is found by its name: a built-in one, a class registered with ``register_task``, an entry
point in the ``learnchain.tasks`` group of an installed package, or ``module:attr`` (the class
``attr`` of the importable ``module``).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from learnchain.ml.codec import StateDict
from learnchain.ml.config import (
    AGGREGATIONS,
    METRICS,
    TASK_ENTRY_POINTS,
    TASK_NAMES,
    Metric,
    TaskConfig,
    is_plugin_name,
)
from learnchain.ml.data import (
    DIGITS_CLASSES,
    DIGITS_FEATURES,
    Dataset,
    align_columns,
    check_shape,
    read_data_file,
)
from learnchain.ml.data_summary import (
    DataSummary,
    align_summary,
    compute_data_summary,
    compute_image_params,
    compute_pooled_feature_statistics,
    compute_pooled_target_statistics,
    compute_summary_shape,
)
from learnchain.ml.device import LocalSettings
from learnchain.ml.errors import TaskError
from learnchain.ml.frozen_base import (
    compute_base_hash,
    compute_trainable_names,
    load_pretrained,
    select_frozen_state,
    select_state,
)
from learnchain.ml.plugins import import_class, register_class
from learnchain.ml.training import (
    Evaluation,
    compute_loss_gradient,
    evaluate_model,
    train_model,
)

log = logging.getLogger("learnchain.data")

__all__ = ["AGGREGATIONS", "METRICS", "TASKS", "Task", "TaskConfig", "get_task", "register_task"]


class Task(ABC):
    """A model, and how to train it, evaluate it and read data for it."""

    name: ClassVar[str] = ""
    # True: a chain made from data files puts the files' feature statistics in the genesis
    # (task.feature_mean, task.feature_scale) for the model to standardise its inputs with
    standardizes: ClassVar[bool] = False
    # True: the data's labels are numbers to predict (regression), not classes
    predicts_values: ClassVar[bool] = False

    def __init__(self, config: TaskConfig, local: LocalSettings | None = None) -> None:
        config.validate()
        self.config = config
        self.local = local or LocalSettings()  # this node's device, threads, pretrained file

    @property
    def features(self) -> int:
        """Input features per sample (the genesis ``task.features``)."""
        return self.config.features

    @property
    def classes(self) -> int:
        """Number of labels (the genesis ``task.classes``)."""
        return self.config.classes

    @abstractmethod
    def build_model(self) -> nn.Module:
        """A freshly initialised model (uses torch's global RNG; see ``initial_model``)."""

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Rows of features to the model's input shape."""
        return x

    def initial_model(self) -> nn.Module:
        """The genesis model: the same on every machine for the same seed (built on the CPU)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            model = self.build_model()
        return model.cpu().eval()

    def trainable(self, model: nn.Module) -> list[str]:
        """The ``state_dict`` names that train, sorted: they alone travel, are hashed,
        aggregated, stored and voted on (by default every tensor, or, when some parameters
        are frozen, the parameters that require gradients)."""
        return compute_trainable_names(model)

    def shared_state(self, model: nn.Module) -> StateDict:
        """The model's trainable tensors (its own, no copies); TaskError when none train."""
        names = self.trainable(model)
        if not names:
            raise TaskError(f"task {self.config.name}: no tensor of the model trains")
        return select_state(model, names)

    def initial_weights(self) -> StateDict:
        """The genesis model's trainable tensors: what the genesis ``initial_model_hash``
        names."""
        return self.shared_state(self.initial_model())

    def compute_base_hash(self, model: nn.Module) -> bytes:
        """The canonical hash of the model's frozen base (empty when nothing is frozen)."""
        return compute_base_hash(select_frozen_state(model, self.trainable(model)))

    def load_pretrained(self, module: nn.Module) -> nn.Module:
        """``module`` (the part of the model the file fits, before adapters wrap it) with the
        node's pretrained weights, when it has a ``pretrained`` file; else unchanged."""
        if not self.local.pretrained:
            return module
        return load_pretrained(module, Path(self.local.pretrained))

    def train(
        self, model: nn.Module, data: Dataset, seed: int, epochs: int | None = None
    ) -> nn.Module:
        """Train ``model`` on ``data`` (seeded; ``epochs`` defaults to the task's local
        epochs); by default mini-batch SGD with momentum on cross-entropy."""
        return train_model(self, model, data, seed, epochs)

    def evaluate(self, model: nn.Module, data: Dataset) -> Evaluation:
        """Per-sample correctness and loss of ``model`` on ``data`` (the vote rule compares
        them sample by sample); by default argmax accuracy and cross-entropy."""
        return evaluate_model(self, model, data)

    def loss_gradient(self, model: nn.Module, data: Dataset, names: list[str]) -> StateDict:
        """The gradient of ``evaluate``'s mean loss at ``model`` on ``data``, for each tensor
        of ``names`` (a first-order appraisal, §3.5); by default of the mean cross-entropy. A
        task that evaluates another loss overrides it with that loss's gradient."""
        return compute_loss_gradient(self, model, data, names)

    def score(self, evaluation: Evaluation) -> float:
        """The number the chain records and the plateau rule follows (higher is better): the
        accuracy, or minus the mean loss, by the genesis ``metric``."""
        return evaluation.accuracy if self.config.metric == Metric.ACCURACY else -evaluation.loss

    def read_data(self, path: Path, label_column: str) -> Dataset:
        """An operator's data as it is (by default CSV with a header naming ``label_column``,
        NPZ with arrays x and y, Parquet, or a folder of images by class, labelled by the
        genesis's ``params.class_names``); its shape is checked by ``load_data``."""
        names = self.config.params.get("class_names")
        listed = names if isinstance(names, list) else None
        return read_data_file(path, label_column, listed, values=self.predicts_values)

    def load_data(self, path: Path, label_column: str) -> Dataset:
        """An operator's data file, checked against the task's shape and, when both name them,
        its feature columns against the genesis's (reordered when only the order differs)."""
        data = self.read_data(path, label_column)
        check_shape(path, data, self.features, self.classes)
        expected = tuple(self.config.feature_names)
        aligned = align_columns(path, data, expected)
        if aligned is not data:
            log.warning(
                "%s: feature columns reordered to the chain's order (%s)", path, ", ".join(expected)
            )
        elif expected and not data.feature_names:
            log.warning(
                "%s: the file does not name its feature columns; they are taken in the "
                "chain's order (%s)",
                path,
                ", ".join(expected),
            )
        return aligned


TASKS: dict[str, type[Task]] = {}  # registered (built-in and register_task)
_LOADED: dict[str, type[Task]] = {}  # found by entry point or module:attr, once


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make a task available by its ``name``."""
    return register_class(TASKS, TASK_NAMES, cls)


def find_task_class(name: str) -> type[Task]:
    """The task class ``name`` names: registered, an entry point in ``learnchain.tasks``, or
    ``module:attr``; TaskError saying why not."""
    found = TASKS.get(name) or _LOADED.get(name)
    if found is not None:
        return found
    if is_plugin_name(name):
        loaded = import_class(name, Task, "task")
    else:
        points = importlib.metadata.entry_points(group=TASK_ENTRY_POINTS, name=name)
        if not points:
            known = ", ".join(sorted(TASK_NAMES))
            raise TaskError(f"unknown task {name!r}; known: {known}, or MODULE:CLASS")
        loaded = next(iter(points)).load()
        if not (isinstance(loaded, type) and issubclass(loaded, Task)):
            raise TaskError(f"task {name!r} is not a subclass of ml.tasks.Task")
    _LOADED[name] = loaded
    return loaded


def fit_task_to_data(config: TaskConfig, named: list[tuple[str, Dataset]]) -> TaskConfig:
    """``config`` with the shape of the (path, data) pairs (they must agree on the features) and,
    for a task that standardises or predicts values, the data's pooled statistics: what a
    chain made from these files puts in its genesis."""
    return fit_task_to_summaries(
        config, [(path, compute_data_summary(data)) for path, data in named]
    )


def fit_task_to_summaries(config: TaskConfig, named: list[tuple[str, DataSummary]]) -> TaskConfig:
    """``config`` fitted to the parties' data summaries (where, summary): the shape they agree
    on, their features in the first party's column order, and the pooled statistics the task
    standardises with; DataError naming the party that does not fit."""
    task_class = find_task_class(config.name)
    # folders among files, or images of other shapes, named before the features disagree
    images = compute_image_params(named, config.params.get("class_names"))
    compute_summary_shape(named)  # the parties agree on the number of features
    first_where, first = named[0]
    if first.feature_names:  # every party's columns in the first one's order, by name
        named = [
            (where, align_summary(where, summary, first.feature_names, first_where))
            for where, summary in named
        ]
    features, classes = compute_summary_shape(named)
    fitted = dataclasses.replace(
        config,
        features=features,
        classes=classes,
        feature_names=list(first.feature_names) if first.feature_names else config.feature_names,
    )
    if images:  # folders of images: labels index the pooled class names
        fitted = dataclasses.replace(
            fitted,
            classes=max(2, len(images["class_names"])),
            params={**images, **fitted.params},
        )
    summaries = [summary for _, summary in named]
    if task_class.standardizes and not config.feature_mean:
        mean, scale = compute_pooled_feature_statistics(summaries)
        fitted = dataclasses.replace(fitted, feature_mean=mean, feature_scale=scale)
    if task_class.predicts_values and "target_scale" not in config.params:
        target_mean, target_scale = compute_pooled_target_statistics(summaries)
        targets = {"target_mean": target_mean, "target_scale": target_scale}
        fitted = dataclasses.replace(fitted, params={**fitted.params, **targets})
    return fitted


def get_task(config: TaskConfig, local: LocalSettings | None = None) -> Task:
    """The task the config names, built for its hyperparameters (and this node's settings)."""
    config.validate()
    return find_task_class(config.name)(config, local)


def _mlp(features: int, hidden: int, classes: int) -> nn.Module:
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, classes))


@register_task
class DigitsMLP(Task):
    """A one-hidden-layer perceptron on the 8x8 digits."""

    name = "digits-mlp"

    def build_model(self) -> nn.Module:
        return _mlp(self.features, self.config.hidden, self.classes)


@register_task
class DigitsCNN(Task):
    """A small convolutional network on the 8x8 digits."""

    name = "digits-cnn"

    def build_model(self) -> nn.Module:
        if (self.features, self.classes) != (DIGITS_FEATURES, DIGITS_CLASSES):
            raise TaskError(
                f"digits-cnn takes 8x8 images in {DIGITS_CLASSES} classes, not "
                f"{self.features} features in {self.classes} classes"
            )
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 2 * 2, self.classes),
        )

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1, 1, 8, 8)


class Standardize(nn.Module):
    """(x - mean) / scale with the genesis's fixed per-feature statistics (buffers, not
    parameters: saved with the weights so an exported model takes raw features, never trained)."""

    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, mean: list[float], scale: list[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale


@register_task
class TabularMLP(Task):
    """A perceptron for an operator's own tabular file (features and classes from the data),
    standardising its inputs with the genesis's feature statistics when it has them."""

    name = "tabular-mlp"
    standardizes = True

    def build_model(self) -> nn.Module:
        model = _mlp(self.features, self.config.hidden, self.classes)
        if not self.config.feature_mean:
            return model
        return nn.Sequential(
            Standardize(self.config.feature_mean, self.config.feature_scale), *model.children()
        )


class Rescale(nn.Module):
    """y * scale + mean with fixed buffers: a model that learns standardised targets outputs
    them in the data's own units."""

    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, mean: float, scale: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([mean], dtype=torch.float32))
        self.register_buffer("scale", torch.tensor([scale], dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.scale + self.mean).squeeze(-1)


@register_task
class TabularRegression(Task):
    """A perceptron that predicts a number from an operator's tabular file. Votes and scores by
    squared error (``metric = loss``: the score is minus the mean squared error); ``accuracy``
    counts predictions within half a standard deviation of the target."""

    name = "tabular-regression"
    standardizes = True
    predicts_values = True

    @property
    def target_scale(self) -> float:
        """The targets' standard deviation in the creator's files (params.target_scale)."""
        return float(self.config.params.get("target_scale", 1.0))

    def build_model(self) -> nn.Module:
        layers: list[nn.Module] = []
        if self.config.feature_mean:
            layers.append(Standardize(self.config.feature_mean, self.config.feature_scale))
        layers += list(_mlp(self.features, self.config.hidden, 1).children())
        mean = float(self.config.params.get("target_mean", 0.0))
        layers.append(Rescale(mean, self.target_scale))
        return nn.Sequential(*layers)

    def train(
        self, model: nn.Module, data: Dataset, seed: int, epochs: int | None = None
    ) -> nn.Module:
        scale = self.target_scale

        def loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return (((predicted - target) / scale) ** 2).mean()

        return train_model(self, model, data, seed, epochs, loss)

    def loss_gradient(self, model: nn.Module, data: Dataset, names: list[str]) -> StateDict:
        def squared_error(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return ((predicted - target) ** 2).mean()

        return compute_loss_gradient(self, model, data, names, squared_error)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: Dataset) -> Evaluation:
        model.eval()
        x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
        error = model(self.prepare(x)) - y
        return Evaluation(
            (error.abs() <= self.target_scale / 2).numpy(),
            (error**2).numpy().astype(np.float32),
        )
