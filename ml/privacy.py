"""Optional differential privacy: DP-SGD through Opacus, and the node's privacy budget.

Each training run samples every example independently with probability q = batch/n per step
(Poisson sampling, which the RDP accountant assumes), clips per-sample gradients to
``dp_max_grad_norm`` and adds Gaussian noise of ``dp_noise_multiplier`` times that norm.
The ledger accumulates every run's (noise, q, steps) and refuses a run that would take the
node's epsilon at ``dp_delta`` past ``dp_target_epsilon``.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn
from torch.nn import functional as F

from learnchain.ml.data import Dataset
from learnchain.ml.errors import PrivacyBudgetExceeded
from learnchain.ml.tasks import Task
from learnchain.ml.training import to_tensors


class PrivacyLedger:
    """The privacy this node has spent, and its limit."""

    def __init__(self, target_epsilon: float, delta: float) -> None:
        self.target_epsilon = target_epsilon
        self.delta = delta
        self._history: list[tuple[float, float, int]] = []  # (noise, sample rate, steps) runs

    @property
    def spent_epsilon(self) -> float:
        """Epsilon spent so far at this ledger's delta."""
        return self._compute_epsilon(self._history) if self._history else 0.0

    def _compute_epsilon(self, history: list[tuple[float, float, int]]) -> float:
        # Opacus (and what it imports) costs about 100 MB of memory: only nodes using DP load it.
        from opacus.accountants import RDPAccountant

        accountant = RDPAccountant()
        accountant.history = list(history)
        return float(accountant.get_epsilon(self.delta))

    def compute_epsilon_after(
        self, noise_multiplier: float, sample_rate: float, steps: int
    ) -> float:
        """Epsilon if a run of ``steps`` steps were added."""
        return self._compute_epsilon([*self._history, (noise_multiplier, sample_rate, steps)])

    def charge(self, noise_multiplier: float, sample_rate: float, steps: int) -> None:
        """Record a run, or raise PrivacyBudgetExceeded (recording nothing)."""
        after = self.compute_epsilon_after(noise_multiplier, sample_rate, steps)
        if self.target_epsilon > 0 and after > self.target_epsilon:
            raise PrivacyBudgetExceeded(
                f"training would spend epsilon {after:.2f} (delta {self.delta:g}), past this "
                f"node's budget of {self.target_epsilon:g}; spent so far {self.spent_epsilon:.2f}"
            )
        self._history.append((noise_multiplier, sample_rate, steps))


def compute_dp_steps(task: Task, samples: int) -> tuple[float, int]:
    """Sampling rate and step count of one DP training run (local epochs of Poisson batches)."""
    config = task.config
    sample_rate = min(1.0, config.batch_size / max(samples, 1))
    return sample_rate, max(1, math.ceil(config.local_epochs / sample_rate))


def train_model_dp(
    task: Task, model: nn.Module, data: Dataset, seed: int, ledger: PrivacyLedger
) -> nn.Module:
    """DP-SGD for the task's local epochs, charged to ``ledger`` before any step is taken."""
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    config = task.config
    sample_rate, steps = compute_dp_steps(task, len(data))
    ledger.charge(config.dp_noise_multiplier, sample_rate, steps)
    x, y = to_tensors(data)
    x = task.prepare(x)
    generator = torch.Generator().manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # opacus warns about secure RNG; training is seeded on purpose
        private = GradSampleModule(model)
        optimizer = DPOptimizer(
            torch.optim.SGD(
                private.parameters(), lr=config.learning_rate, momentum=config.momentum
            ),
            noise_multiplier=config.dp_noise_multiplier,
            max_grad_norm=config.dp_max_grad_norm,
            expected_batch_size=config.batch_size,
            generator=generator,
        )
        private.train()
        for _ in range(steps):
            mask = torch.rand(len(y), generator=generator) < sample_rate
            optimizer.zero_grad(set_to_none=True)
            if not bool(mask.any()):
                # An empty Poisson batch still takes a (pure-noise) step, as the accountant assumes.
                for parameter in private.parameters():
                    parameter.grad_sample = torch.zeros((0, *parameter.shape))
                optimizer.step()
                continue
            loss = F.cross_entropy(private(x[mask]), y[mask], reduction="mean")
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
    trained: nn.Module = private._module
    return trained.eval()
