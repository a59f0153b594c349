"""Training and evaluation on the node's device (``ml.device``), vectorised: whole-tensor batches,
no per-sample loops."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional as F

from learnchain.ml.codec import StateDict
from learnchain.ml.data import Dataset
from learnchain.ml.device import on_device

if TYPE_CHECKING:
    from learnchain.ml.tasks import Task


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

    def head(self, count: int) -> Evaluation:
        """The results of the first ``count`` samples."""
        return Evaluation(self.correct[:count], self.losses[:count])


def clone_state(state: StateDict) -> StateDict:
    """An independent copy of a state dict."""
    return {k: v.detach().clone() for k, v in state.items()}


def load_model(task: Task, state: StateDict) -> nn.Module:
    """The task's model holding ``state`` (its trainable tensors; the frozen base is the
    task's own)."""
    model = task.initial_model()
    differ = set(task.trainable(model)) ^ set(state)
    if differ:
        raise ValueError(f"the weights and the task's model differ in {sorted(differ)[:5]}")
    model.load_state_dict(state, strict=False)
    return model


def to_tensors(data: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and labels as tensors (shared memory with the arrays)."""
    return torch.from_numpy(data.x), torch.from_numpy(data.y)


class MomentumSGD:
    """SGD with heavy-ball momentum, step for step what ``torch.optim.SGD`` computes on the CPU.

    ``torch.optim.Optimizer`` imports ``torch._dynamo`` (and sympy with it) when it is built,
    about 70 MB of resident memory in every node process for an optimizer of six lines.
    """

    def __init__(self, parameters: list[nn.Parameter], lr: float, momentum: float) -> None:
        self.parameters = parameters
        self.lr = lr
        self.momentum = momentum
        self._buffers: list[torch.Tensor | None] = [None] * len(parameters)

    def zero_grad(self) -> None:
        """Forget the gradients of the last step."""
        for parameter in self.parameters:
            parameter.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """buf <- momentum * buf + grad (grad on the first step); param <- param - lr * buf."""
        for i, parameter in enumerate(self.parameters):
            grad = parameter.grad
            if grad is None:
                continue
            if self.momentum != 0:
                buffer = self._buffers[i]
                if buffer is None:
                    buffer = self._buffers[i] = torch.clone(grad).detach()
                else:
                    buffer.mul_(self.momentum).add_(grad)
                grad = buffer
            parameter.add_(grad, alpha=-self.lr)


LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def train_model(
    task: Task,
    model: nn.Module,
    data: Dataset,
    seed: int,
    epochs: int | None = None,
    loss: LossFunction = F.cross_entropy,
) -> nn.Module:
    """Mini-batch SGD with momentum on ``loss`` (cross-entropy by default) for the task's local
    epochs; seeded shuffling (``Task.train`` unless a task trains its own way)."""
    config, local = task.config, task.local
    x, y = to_tensors(data)
    x, y = task.prepare(x).to(local.device), y.to(local.device)
    generator = torch.Generator().manual_seed(seed)
    with on_device(model, local.device):
        trained = [p for p in model.parameters() if p.requires_grad]  # a frozen base stays
        optimizer = MomentumSGD(trained, lr=config.learning_rate, momentum=config.momentum)
        model.train()
        for _ in range(config.local_epochs if epochs is None else epochs):
            order = torch.randperm(len(y), generator=generator).to(local.device)
            for start in range(0, len(y), config.batch_size):
                batch = order[start : start + config.batch_size]
                optimizer.zero_grad()
                with local.autocast():
                    batch_loss = loss(model(x[batch]).float(), y[batch])
                batch_loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
    return model.eval()


@torch.no_grad()
def evaluate_model(task: Task, model: nn.Module, data: Dataset) -> Evaluation:
    """Correctness (argmax) and cross-entropy of each sample, in one forward pass
    (``Task.evaluate`` unless a task evaluates its own way)."""
    model.eval()
    x, y = to_tensors(data)
    device = task.local.device
    with on_device(model, device):
        logits = model(task.prepare(x).to(device)).float().cpu()
    losses = F.cross_entropy(logits, y, reduction="none")
    correct = logits.argmax(dim=1) == y
    return Evaluation(correct.numpy(), losses.numpy().astype(np.float32))


def compute_loss_gradient(
    task: Task,
    model: nn.Module,
    data: Dataset,
    names: list[str],
    loss: LossFunction = F.cross_entropy,
) -> StateDict:
    """The gradient of the mean ``loss`` of ``model`` on ``data`` with respect to each of the
    state dict's ``names``, on the CPU in the tensor's dtype (zero for a buffer: a first-order
    value sees only what has a gradient). One forward and one backward pass."""
    model.eval()
    x, y = to_tensors(data)
    device = task.local.device
    parameters = dict(model.named_parameters())
    state = model.state_dict(keep_vars=True)
    with on_device(model, device):
        differentiable = [name for name in names if name in parameters]
        inputs = [parameters[name] for name in differentiable]
        with torch.enable_grad():
            mean_loss = loss(model(task.prepare(x).to(device)).float(), y.to(device))
            grads = torch.autograd.grad(mean_loss, inputs, allow_unused=True)
    found = {
        name: torch.zeros_like(parameters[name]) if grad is None else grad.detach()
        for name, grad in zip(differentiable, grads, strict=True)
    }
    return {
        name: (found[name] if name in found else torch.zeros_like(state[name])).to("cpu")
        for name in names
    }


def evaluate_state(task: Task, state: StateDict, data: Dataset) -> Evaluation:
    """Evaluate weights given as a state dict, the task's way."""
    return task.evaluate(load_model(task, state), data)
