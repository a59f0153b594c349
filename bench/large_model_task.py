"""The large-model bench's task plugin: a deep, wide perceptron on the digits shards, its size set
by ``params.width`` and ``params.depth`` (``bench/large_model.py`` names it
``large_model_task:DeepMLP`` with ``--task-path bench``).

Its tensors are of the sizes real models have (a 500 MB model is eight 62 MB matrices here,
as a transformer's blocks are), so what the weights path does per tensor is measured, not only
what it does per model.
"""

from __future__ import annotations

from torch import nn

from learnchain.ml.tasks import Task


def compute_parameters(width: int, depth: int, features: int = 64, classes: int = 10) -> int:
    """The parameter count of ``DeepMLP`` with ``width`` and ``depth``."""
    return (
        features * width + width + (depth - 1) * (width * width + width) + width * classes + classes
    )


def compute_width(megabytes: float, depth: int) -> int:
    """The width whose float32 ``DeepMLP`` of ``depth`` layers weighs about ``megabytes``."""
    width = 16
    while compute_parameters(width + 16, depth) * 4 <= megabytes * 1e6:
        width += 16
    return width


class DeepMLP(Task):
    """``depth`` hidden layers of ``width`` units with ReLU, on the digits' 64 features."""

    name = "deep-mlp"

    def build_model(self) -> nn.Module:
        width = int(self.config.params.get("width", 256))
        depth = int(self.config.params.get("depth", 2))
        layers: list[nn.Module] = [nn.Linear(self.features, width), nn.ReLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.ReLU()]
        layers.append(nn.Linear(width, self.classes))
        return nn.Sequential(*layers)
