"""Aggregate mode: combine the validators' contributions into one proposal, robustly.

FedAvg weighted by sample counts, hardened so that one poisoned contribution can neither poison
nor stall the aggregate:

- non-finite contributions are dropped;
- ``screened_mean``: each contribution is scored on the proposer's own vote data and dropped
  when it scores more than ``screen_margin`` below the median contribution (label flipping,
  random or replaced weights score far below the honest majority);
- every update (contribution minus the global model) is clipped to the median update norm,
  so a scaled update cannot dominate;
- sample counts (self-reported) are capped at twice the median count;
- ``trimmed_mean`` and ``median`` replace the weighted mean by coordinate-wise robust statistics.

The result depends only on the inputs: contributions are ordered by their ids first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ml.codec import StateDict
from ml.config import Aggregation


@dataclass(frozen=True)
class Contribution:
    """A validator's locally trained weights and how many samples trained them."""

    contributor: str
    state: StateDict
    samples: int


def is_finite_state(state: StateDict) -> bool:
    """True when every floating tensor is finite."""
    return all(bool(torch.isfinite(t).all()) for t in state.values() if t.is_floating_point())


def _flatten(state: StateDict, names: list[str]) -> torch.Tensor:
    return torch.cat([state[n].reshape(-1).to(torch.float64) for n in names])


def _unflatten(vector: torch.Tensor, template: StateDict, names: list[str]) -> StateDict:
    out: StateDict = {}
    offset = 0
    for name in names:
        size = template[name].numel()
        out[name] = (
            vector[offset : offset + size].reshape(template[name].shape).to(template[name].dtype)
        )
        offset += size
    return out


def aggregate_contributions(
    global_state: StateDict,
    contributions: list[Contribution],
    rule: Aggregation = Aggregation.SCREENED_MEAN,
    score: Callable[[StateDict], float] | None = None,
    screen_margin: float = 0.10,
    trim_fraction: float = 0.2,
    momentum: float = 0.0,
    previous_global: StateDict | None = None,
) -> tuple[StateDict, list[str]]:
    """The aggregate weights and the ids of the contributions it used.

    With ``momentum`` > 0 (FedAvgM), the last global step, ``global - previous_global`` (both
    on the chain), is added times ``momentum``.
    """
    names = sorted(global_state)
    usable = sorted(
        (c for c in contributions if c.samples > 0 and is_finite_state(c.state)),
        key=lambda c: c.contributor,
    )
    if rule == Aggregation.SCREENED_MEAN and score is not None and len(usable) > 1:
        scores = [score(c.state) for c in usable]
        median_score = float(torch.tensor(scores).median())
        usable = [
            c for c, s in zip(usable, scores, strict=True) if s >= median_score - screen_margin
        ]
    if not usable:
        return {k: v.clone() for k, v in global_state.items()}, []
    base = _flatten(global_state, names)
    deltas = torch.stack([_flatten(c.state, names) - base for c in usable])
    norms = deltas.norm(dim=1)
    median_norm = norms.median()
    scale = torch.where(
        norms > median_norm, median_norm / norms.clamp_min(1e-12), torch.ones_like(norms)
    )
    deltas = deltas * scale.unsqueeze(1)
    if rule == Aggregation.MEDIAN:
        combined = deltas.median(dim=0).values
    elif rule == Aggregation.TRIMMED_MEAN and len(usable) >= 3:
        k = min(int(len(usable) * trim_fraction), (len(usable) - 1) // 2)
        ordered = deltas.sort(dim=0).values
        combined = ordered[k : len(usable) - k].mean(dim=0)
    else:
        samples = torch.tensor([float(c.samples) for c in usable], dtype=torch.float64)
        weights = samples.clamp_max(2 * samples.median())
        combined = (deltas * (weights / weights.sum()).unsqueeze(1)).sum(dim=0)
    if momentum > 0 and previous_global is not None:
        combined = combined + momentum * (base - _flatten(previous_global, names))
    return _unflatten(base + combined, global_state, names), [c.contributor for c in usable]
