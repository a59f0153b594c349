"""Training and evaluation on the CPU, vectorised: whole-tensor batches, no per-sample loops."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional as F

from ml.codec import StateDict
from ml.data import Dataset
from ml.tasks import Task


@dataclass(frozen=True)
class Evaluation:
    """Per-sample results of some weights on a dataset."""

    correct: npt.NDArray[np.bool_]
    losses: npt.NDArray[np.float32]

    @property
    def accuracy(self) -> float:
        """Fraction classified correctly."""
        return float(self.correct.mean()) if len(self.correct) else 0.0

    @property
    def loss(self) -> float:
        """Mean cross-entropy."""
        return float(self.losses.mean()) if len(self.losses) else 0.0


def clone_state(state: StateDict) -> StateDict:
    """An independent copy of a state dict."""
    return {k: v.detach().clone() for k, v in state.items()}


def load_model(task: Task, state: StateDict) -> nn.Module:
    """The task's model holding ``state``."""
    model = task.build_model()
    model.load_state_dict(state)
    return model


def to_tensors(data: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and labels as tensors (shared memory with the arrays)."""
    return torch.from_numpy(data.x), torch.from_numpy(data.y)


def train_model(
    task: Task, model: nn.Module, data: Dataset, seed: int, epochs: int | None = None
) -> nn.Module:
    """Mini-batch SGD with momentum for the task's local epochs; seeded shuffling."""
    config = task.config
    x, y = to_tensors(data)
    x = task.prepare(x)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.learning_rate, momentum=config.momentum
    )
    model.train()
    for _ in range(config.local_epochs if epochs is None else epochs):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), config.batch_size):
            batch = order[start : start + config.batch_size]
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[batch]), y[batch]).backward()  # type: ignore[no-untyped-call]
            optimizer.step()
    return model.eval()


@torch.no_grad()
def evaluate_model(task: Task, model: nn.Module, data: Dataset) -> Evaluation:
    """Correctness and loss of each sample, in one forward pass."""
    model.eval()
    x, y = to_tensors(data)
    logits = model(task.prepare(x))
    losses = F.cross_entropy(logits, y, reduction="none")
    correct = logits.argmax(dim=1) == y
    return Evaluation(correct.numpy(), losses.numpy().astype(np.float32))


def evaluate_state(task: Task, state: StateDict, data: Dataset) -> Evaluation:
    """Evaluate weights given as a state dict."""
    return evaluate_model(task, load_model(task, state), data)
