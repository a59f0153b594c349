"""The trainer's optimizer and its memory."""

from __future__ import annotations

import subprocess
import sys

import torch
from torch import nn
from torch.nn import functional as F

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
