"""The trainer's optimizer and its memory."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from learnchain.ml.codec import StateDict
from learnchain.ml.data import Dataset
from learnchain.ml.tasks import Task, TaskConfig, get_task
from learnchain.ml.training import MomentumSGD


def _train(model: nn.Module, optimizer: MomentumSGD | torch.optim.SGD) -> None:
    generator = torch.Generator().manual_seed(1)
    for _ in range(20):
        x = torch.randn(16, 8, generator=generator)
        y = torch.randint(0, 3, (16,), generator=generator)
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()  # type: ignore[no-untyped-call]
        optimizer.step()


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


def test_momentum_sgd_takes_bit_for_bit_the_steps_of_torch_sgd() -> None:
    ours, theirs = _model(), _model()
    _train(ours, MomentumSGD(list(ours.parameters()), lr=0.1, momentum=0.9))
    _train(theirs, torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9))
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_training_does_not_load_torch_dynamo() -> None:
    program = (
        "import sys\n"
        "from learnchain.ml.data import load_digits_party\n"
        "from learnchain.ml.tasks import TaskConfig, get_task\n"
        "from learnchain.ml.training import train_model\n"
        "task = get_task(TaskConfig(name='digits-mlp'))\n"
        "data, _ = load_digits_party(0, 2, 'iid', 0)\n"
        "train_model(task, task.initial_model(), data.train, seed=0)\n"
        "print('torch._dynamo' in sys.modules, 'sympy' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False"]


def directional_derivative(task: Task, model: nn.Module, data: Dataset, v: StateDict) -> float:
    """``evaluate``'s mean loss differentiated along ``v`` by central differences."""
    base = {k: t.clone() for k, t in model.state_dict().items()}
    losses = []
    for sign in (1, -1):
        model.load_state_dict({k: base[k] + sign * EPSILON * v.get(k, 0) for k in base})
        losses.append(task.evaluate(model, data).loss)
    model.load_state_dict(base)
    return (losses[0] - losses[1]) / (2 * EPSILON)


EPSILON = 1e-2


@pytest.mark.parametrize("name", ["digits-mlp", "tabular-regression"])
def test_a_tasks_loss_gradient_is_the_gradient_of_the_loss_it_evaluates(name: str) -> None:
    """``Task.loss_gradient`` (a first-order appraisal, §3.5) differentiates the mean loss of
    the task's own ``evaluate``: cross-entropy for a classifier, squared error in the target's
    units for the regression task."""
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(200, 6, generator=generator)
    if name == "tabular-regression":
        y = (x @ torch.arange(6.0) + 40).numpy()
        config = TaskConfig(name=name, features=6, classes=1, params={"target_mean": 40.0})
    else:
        y = (x[:, 0] > 0).long().numpy()
        config = TaskConfig(name=name, features=6, classes=2, hidden=16)
    task = get_task(config)
    data = Dataset(x.numpy(), y)
    model = task.initial_model()
    names = task.trainable(model)
    gradient = task.loss_gradient(model, data, names)
    assert set(gradient) == set(names)
    parameters = dict(model.named_parameters())
    buffers = [k for k in names if k not in parameters]  # the regression's fixed rescaling
    assert all(not gradient[k].any() for k in buffers), "a buffer has no gradient"
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        v = {k: torch.randn(p.shape, generator=g) for k, p in parameters.items()}
        expected = directional_derivative(task, model, data, v)
        found = float(sum((gradient[k].double() * v[k].double()).sum() for k in v))
        assert found == pytest.approx(expected, rel=2e-2, abs=1e-4)
