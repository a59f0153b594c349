"""The ``task`` object of the genesis: a task name and its hyperparameters (no torch here).

The command line reads genesis files without loading torch; ``ml.tasks`` holds the models.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from learnchain.ml.errors import TaskError

DIGITS_FEATURES = 64
DIGITS_CLASSES = 10
BUILTIN_TASKS = ("digits-cnn", "digits-mlp", "tabular-mlp", "tabular-regression")
TASK_NAMES: set[str] = set(BUILTIN_TASKS)  # ml.tasks.register_task adds the tasks it registers
TASK_ENTRY_POINTS = "learnchain.tasks"  # the entry-point group installed packages add tasks to


DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
APPRAISALS = ("exact", "first_order")  # how a validator measures a contribution's gain (§3.5)
PRECISIONS = ("float32", "bfloat16", "float16")  # a node's training precision (config.toml)


def is_device_name(text: str) -> bool:
    """True for ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (a node's ``device``)."""
    return DEVICE_PATTERN.match(text) is not None


def is_plugin_name(name: str) -> bool:
    """True for ``module.path:attr`` (a task class to import)."""
    module, sep, attr = name.partition(":")
    parts = module.split(".")
    return bool(sep) and all(p.isidentifier() for p in parts) and attr.isidentifier()


def is_known_task(name: str) -> bool:
    """True for a registered task, an installed entry point, or ``module:attr`` (checked for
    form only: importing it needs torch)."""
    if name in TASK_NAMES or is_plugin_name(name):
        return True
    from importlib.metadata import entry_points

    return bool(entry_points(group=TASK_ENTRY_POINTS, name=name))


class Metric(enum.StrEnum):
    """What the vote rule scores a model by."""

    ACCURACY = "accuracy"
    LOSS = "loss"


class Aggregation(enum.StrEnum):
    """How an aggregating proposer combines contributions (ml.aggregate)."""

    CLIPPED_MEAN = "clipped_mean"
    SCREENED_MEAN = "screened_mean"
    TRIMMED_MEAN = "trimmed_mean"
    WINSORIZED_MEAN = "winsorized_mean"
    SOFT_WINSORIZED_MEAN = "soft_winsorized_mean"
    MEDIAN = "median"


METRICS = tuple(metric.value for metric in Metric)
# Operators' files are often small, and so are their vote sets: per-sample loss gives the vote
# far more power there than 0/1 accuracy (bench/README.md), so chains made from files vote by it.
FILE_DATA_METRIC = Metric.LOSS
# bench/README.md, "Free riders": honest updates on IID digits lie at least 0.37 of the larger
# norm apart; a copy with noise of a fifth of the update's spread lies about 0.2 from it
DEFAULT_DUPLICATE_MARGIN = 0.2
AGGREGATIONS = tuple(aggregation.value for aggregation in Aggregation)
AGGREGATION_NAMES: set[str] = set(AGGREGATIONS)  # ml.aggregate.register_aggregation adds more


DENSE_CODECS = ("float32", "bfloat16", "int8")  # task.codec, besides topk:FRACTION


def parse_codec_name(text: str) -> float | None:
    """The fraction a ``topk:FRACTION`` codec keeps, or None for a dense codec; TaskError, one
    line, for anything else (read without torch: a genesis is read before it loads)."""
    if text in DENSE_CODECS:
        return None
    if text.startswith("topk:"):
        try:
            fraction = float(text.removeprefix("topk:"))
        except ValueError:
            fraction = math.nan
        if not 0 < fraction < 1:
            raise TaskError(
                f"task.codec {text!r}: the fraction of values kept must be a number above 0 "
                "and below 1 (e.g. topk:0.01)"
            )
        return fraction
    choices = ", ".join((*DENSE_CODECS, "topk:FRACTION"))
    raise TaskError(f"task.codec must be one of {choices}, got {text!r}")


@dataclass(frozen=True)
class TaskConfig:
    """The ``task`` object of the genesis: a registered task name and its hyperparameters."""

    name: str = "digits-mlp"  # a registered task (digits-mlp, tabular-mlp, ...) or MODULE:CLASS
    seed: int = 0  # seeds the initial model (its hash is in the genesis) and training
    hidden: int = 192  # hidden units of the built-in MLPs
    learning_rate: float = 0.05  # local SGD's learning rate
    momentum: float = 0.9  # local SGD's momentum
    batch_size: int = 32  # local training's batch size
    local_epochs: int = 3  # passes over a validator's data per contribution
    metric: Metric = Metric.ACCURACY  # what validators score updates by: accuracy or loss
    margin: float = 0.0  # the vote rule: approve unless worse than the model by more than this
    confidence: float = 1.0  # z of the vote rule's one-sided bound (see ml.vote)
    # aggregate mode: a proposal checked to be the rule's aggregate of contributions from more
    # than the threshold of stake is approved unless worse than the model by more than this
    verified_margin: float = 0.03
    aggregation: str = Aggregation.CLIPPED_MEAN.value  # a registered rule, or MODULE:CLASS
    screen_margin: float = 0.10  # the proposer leaves out contributions this far below the median
    # a contribution scoring this far below the block's median contribution on a validator's data
    # is reported harmful (§3.5); validators holding more than the threshold must agree
    harm_margin: float = 0.25
    # a contribution whose update lies within this share of the larger norm of an update that
    # reached a validator before it is a copy (a free rider's) and worth nothing (§3.5); 0: off
    duplicate_margin: float = DEFAULT_DUPLICATE_MARGIN
    # how a contribution's gain is measured (§3.5): exact (one loss of the aggregate without each
    # term, n + 1 evaluations) or first_order (the aggregate's loss gradient, one evaluation
    # and its backward pass, dotted with each term)
    appraisal: str = "exact"
    server_momentum: float = 0.7  # aggregate mode: FedAvgM on the last global step
    # aggregate mode: the outer learning rate, times the rule's combined step (the pseudo-
    # gradient) before the momentum is added; 1: the step itself
    server_learning_rate: float = 1.0
    # how contributions travel (ml/update_codec.py): float32 (the trained weights), or their
    # update as bfloat16, int8 or topk:FRACTION
    codec: str = "float32"
    features: int = DIGITS_FEATURES  # tabular-mlp only: the operator's feature count
    classes: int = DIGITS_CLASSES  # tabular-mlp only: the operator's class count
    dp_noise_multiplier: float = 0.0  # 0: no differential privacy
    dp_max_grad_norm: float = 1.0  # DP-SGD's per-sample gradient clip
    dp_target_epsilon: float = 0.0  # the node's budget; 0 with DP on: unlimited
    dp_delta: float = 1e-5  # DP's delta, for the epsilon a node reports
    # the largest weights a chain's model may have: a bound on what a peer may send; large enough
    # for a model of a billion float32 parameters (a genesis written before it kept 64 MiB)
    max_weights_bytes: int = 1 << 32
    params: dict[str, Any] = field(default_factory=dict)  # a plugin task's own settings
    # tabular-mlp: per-feature mean and scale of the data the chain was made with; the model's
    # first layer standardises its inputs with them (fixed buffers, the same on every node)
    feature_mean: list[float] = field(default_factory=list)
    feature_scale: list[float] = field(default_factory=list)  # see feature_mean
    # a chain made from files that name their columns: the feature columns in the model's
    # input order; a node's file must name the same ones (in another order it is reordered)
    feature_names: list[str] = field(default_factory=list)
    # the canonical hash (hex) of the model's frozen base, for a task that trains adapters on a
    # pretrained network; empty when every tensor trains
    base_hash: str = ""

    def validate(self) -> None:
        """Raise TaskError naming the first bad field."""
        if not is_known_task(self.name):
            known = ", ".join(sorted(TASK_NAMES))
            raise TaskError(
                f"task.name: unknown task {self.name!r}; known: {known}, or MODULE:CLASS"
            )
        if self.metric not in METRICS:
            raise TaskError(f"task.metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if self.aggregation not in AGGREGATION_NAMES and not is_plugin_name(self.aggregation):
            choices = ", ".join(sorted(AGGREGATION_NAMES))
            raise TaskError(
                f"task.aggregation must be one of {choices} or MODULE:CLASS, "
                f"got {self.aggregation!r}"
            )
        positive = {
            "hidden": self.hidden,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "local_epochs": self.local_epochs,
            "features": self.features,
            "classes": self.classes,
            "dp_max_grad_norm": self.dp_max_grad_norm,
            "dp_delta": self.dp_delta,
            "max_weights_bytes": self.max_weights_bytes,
            "server_learning_rate": self.server_learning_rate,
        }
        for name, value in positive.items():
            if not value > 0:
                raise TaskError(f"task.{name} must be positive, got {value}")
        nonnegative = {
            "momentum": self.momentum,
            "margin": self.margin,
            "verified_margin": self.verified_margin,
            "confidence": self.confidence,
            "screen_margin": self.screen_margin,
            "harm_margin": self.harm_margin,
            "server_momentum": self.server_momentum,
            "dp_noise_multiplier": self.dp_noise_multiplier,
            "dp_target_epsilon": self.dp_target_epsilon,
        }
        for name, value in nonnegative.items():
            if value < 0:
                raise TaskError(f"task.{name} must not be negative, got {value}")
        if self.server_momentum >= 1:
            raise TaskError(f"task.server_momentum must be below 1, got {self.server_momentum}")
        if not 0 <= self.duplicate_margin < 1:
            raise TaskError(
                f"task.duplicate_margin must be at least 0 and below 1, got {self.duplicate_margin}"
            )
        if self.appraisal not in APPRAISALS:
            raise TaskError(
                f"task.appraisal must be one of {', '.join(APPRAISALS)}, got {self.appraisal!r}"
            )
        if self.classes < 1:
            raise TaskError("task.classes must be at least 1 (1: a value to predict)")
        if len(self.feature_mean) != len(self.feature_scale) or (
            self.feature_mean and len(self.feature_mean) != self.features
        ):
            raise TaskError("task.feature_mean and task.feature_scale need one value per feature")
        if not all(math.isfinite(v) for v in self.feature_mean) or not all(
            math.isfinite(v) and v > 0 for v in self.feature_scale
        ):
            raise TaskError("task.feature_scale must be positive and both finite")
        if self.feature_names and (
            len(self.feature_names) != self.features
            or len(set(self.feature_names)) != len(self.feature_names)
        ):
            raise TaskError(
                "task.feature_names needs one distinct name per feature "
                f"({len(self.feature_names)} names for {self.features} features)"
            )
        if self.base_hash and not re.fullmatch(r"[0-9a-f]{64}", self.base_hash):
            raise TaskError("task.base_hash must be 64 lowercase hex digits (a SHA-256) or empty")
        for key, value in self.params.items():
            if not isinstance(value, str | int | float | bool) and not (
                isinstance(value, list) and all(isinstance(v, str | int | float) for v in value)
            ):
                raise TaskError(f"task.params.{key}: expected a string, number, boolean or list")
        parse_codec_name(self.codec)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form for the genesis (without ``feature_names`` or ``base_hash`` when there
        are none, nor the ``float32`` codec, a server learning rate of 1, the default
        duplicate margin or the exact appraisal, so a genesis written before they existed keeps
        its hash)."""
        data = dataclasses.asdict(self)
        for optional in ("feature_names", "base_hash"):
            if not data[optional]:
                del data[optional]
        if data["codec"] == "float32":
            del data["codec"]
        if data["server_learning_rate"] == 1.0:
            del data["server_learning_rate"]
        if data["duplicate_margin"] == DEFAULT_DUPLICATE_MARGIN:
            del data["duplicate_margin"]
        if data["appraisal"] == "exact":
            del data["appraisal"]
        return data

    @staticmethod
    def from_dict(data: dict[str, Any]) -> TaskConfig:
        """Read a genesis ``task`` object; unknown or mistyped fields are TaskErrors."""
        if not isinstance(data, dict):
            raise TaskError("task must be an object")
        known = {f.name: f for f in dataclasses.fields(TaskConfig)}
        values: dict[str, Any] = {}
        defaults = TaskConfig()
        for key, value in data.items():
            if key not in known:
                raise TaskError(f"task.{key}: unknown field")
            expected = type(getattr(defaults, key))
            if issubclass(expected, enum.Enum):
                choices = ", ".join(str(member.value) for member in expected)
                if value not in choices.split(", "):
                    raise TaskError(f"task.{key} must be one of {choices}, got {value!r}")
                values[key] = expected(value)
                continue
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if key == "feature_names":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise TaskError("task.feature_names: expected a list of strings")
                values[key] = list(value)
                continue
            if expected is list:
                if not isinstance(value, list) or not all(
                    isinstance(v, int | float) and not isinstance(v, bool) for v in value
                ):
                    raise TaskError(f"task.{key}: expected a list of numbers")
                values[key] = [float(v) for v in value]
                continue
            if not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
                raise TaskError(f"task.{key}: expected {expected.__name__}, got {value!r}")
            values[key] = value
        config = TaskConfig(**values)
        config.validate()
        return config


def parse_task_params(pairs: list[str], base: TaskConfig) -> TaskConfig:
    """``base`` with ``key=value`` settings: a field of the task config (``hidden=64``,
    ``metric=loss``) or, for any other key, an entry of ``params`` for a plugin task. Values are
    read as JSON when they parse (numbers, true/false), else as strings. TaskError on a bad one."""
    data = base.to_dict()
    fields = {f.name for f in dataclasses.fields(TaskConfig)} - {"params", "name"}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise TaskError(f"--task-param takes KEY=VALUE, got {pair!r}")
        try:
            value: Any = json.loads(text)
        except json.JSONDecodeError:
            value = text
        if key in fields:
            data[key] = value
        else:
            data["params"][key] = value
    return TaskConfig.from_dict(data)
