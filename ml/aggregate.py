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
- ``trimmed_mean`` and ``median`` replace the weighted mean by coordinate-wise robust statistics;
  ``winsorized_mean`` clamps each coordinate to its inner values before the weighted mean.

A validator checks that a proposed aggregate is the rule's output from the contributions its
block lists (``is_rule_aggregate``), as an ABCI++ application re-executes a proposal.

How the clipped updates become one step is an ``AggregationRule`` (a Flower Strategy's
``aggregate_fit``, in small): the built-in rules above are registered by name, and a user's rule
is a subclass registered with ``register_aggregation`` or named ``module:attr`` in the genesis
``task.aggregation``. The result depends only on the inputs: contributions are ordered by their
ids first.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch

from learnchain.ml.codec import StateDict
from learnchain.ml.config import AGGREGATION_NAMES, Aggregation, is_plugin_name
from learnchain.ml.errors import TaskError
from learnchain.ml.plugins import import_class, register_class


@dataclass(frozen=True)
class Contribution:
    """A validator's locally trained weights and how many samples trained them."""

    contributor: str
    state: StateDict
    samples: int


class AggregationRule(ABC):
    """How the contributions' clipped updates (one row each) become one step."""

    name: ClassVar[str] = ""
    # drop contributions that score more than screen_margin below the median contribution on
    # the proposer's own data before combining
    screens: ClassVar[bool] = False
    # how many validators could have contributed (0: unknown), set before each combine: a rule
    # whose robustness depends on a count takes it from here, so that a proposer listing fewer
    # contributions cannot weaken it
    population: int = 0

    @abstractmethod
    def combine(self, deltas: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        """One update from ``deltas`` (contributions × parameters, float64) and each
        contribution's self-reported ``samples``."""


AGGREGATION_RULES: dict[str, type[AggregationRule]] = {}


def register_aggregation(cls: type[AggregationRule]) -> type[AggregationRule]:
    """Class decorator: make an aggregation rule available by its ``name``."""
    return register_class(AGGREGATION_RULES, AGGREGATION_NAMES, cls)


def get_aggregation_rule(name: str) -> AggregationRule:
    """The rule ``name`` names: registered, or ``module:attr``; TaskError saying why not."""
    found = AGGREGATION_RULES.get(name)
    if found is None and is_plugin_name(name):
        found = import_class(name, AggregationRule, "aggregation")
    if found is None:
        known = ", ".join(sorted(AGGREGATION_RULES))
        raise TaskError(f"unknown aggregation {name!r}; known: {known}, or MODULE:CLASS")
    return found()


@register_aggregation
class ClippedMean(AggregationRule):
    """FedAvg: the mean weighted by sample counts, each capped at twice the median count."""

    name = Aggregation.CLIPPED_MEAN

    def combine(self, deltas: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        weights = samples.clamp_max(2 * samples.median())
        return (deltas * (weights / weights.sum()).unsqueeze(1)).sum(dim=0)


@register_aggregation
class ScreenedMean(ClippedMean):
    """The clipped mean of the contributions that pass the proposer's screening."""

    name = Aggregation.SCREENED_MEAN
    screens = True


@register_aggregation
class TrimmedMean(ClippedMean):
    """Coordinate-wise, the mean without the highest and lowest fifth (the clipped mean below
    three contributions)."""

    name = Aggregation.TRIMMED_MEAN
    trim_fraction = 0.2

    def combine(self, deltas: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        count = deltas.shape[0]
        if count < 3:
            return super().combine(deltas, samples)
        k = min(int(count * self.trim_fraction), (count - 1) // 2)
        return deltas.sort(dim=0).values[k : count - k].mean(dim=0)


@register_aggregation
class WinsorizedMean(ClippedMean):
    """Coordinate-wise, each value clamped between the (k+1)-th lowest and highest, where k is
    the byzantine bound ⌊(n-1)/3⌋ of the validators (``population``; the contributions when
    unknown), at most the median, then the clipped mean. One party's extreme coordinates (a
    backdoor's trigger weights, which no honest update moves) are cut to what the others moved,
    but no contribution is dropped: a small update in the middle, such as IPM's, keeps the
    weight of one party instead of gaining that of a dropped honest extreme."""

    name = Aggregation.WINSORIZED_MEAN

    def combine(self, deltas: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        count = deltas.shape[0]
        k = min((max(count, self.population) - 1) // 3, (count - 1) // 2)
        if k == 0:
            return super().combine(deltas, samples)
        ordered = deltas.sort(dim=0).values
        return super().combine(deltas.clamp(ordered[k], ordered[count - 1 - k]), samples)


@register_aggregation
class CoordinateMedian(AggregationRule):
    """Coordinate-wise median."""

    name = Aggregation.MEDIAN

    def combine(self, deltas: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        return deltas.median(dim=0).values


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


def compute_clipped_deltas(base: torch.Tensor, states: list[torch.Tensor]) -> torch.Tensor:
    """Each flattened state's update from ``base`` (one row each), clipped to the median norm."""
    deltas = torch.stack([state - base for state in states])
    norms = deltas.norm(dim=1)
    median_norm = norms.median()
    scale = torch.where(
        norms > median_norm, median_norm / norms.clamp_min(1e-12), torch.ones_like(norms)
    )
    return deltas * scale.unsqueeze(1)


def compute_flat(state: StateDict) -> tuple[list[str], torch.Tensor]:
    """The parameter names in canonical order and the state flattened in it."""
    names = sorted(state)
    return names, _flatten(state, names)


def compute_unflat(vector: torch.Tensor, template: StateDict) -> StateDict:
    """A flattened state (``compute_flat``'s order) shaped like ``template``."""
    return _unflatten(vector, template, sorted(template))


def is_rule_aggregate(
    proposed: StateDict,
    global_state: StateDict,
    listed: list[Contribution],
    rule: str | AggregationRule,
    momentum: float = 0.0,
    previous_global: StateDict | None = None,
    population: int = 0,
) -> bool:
    """True when ``proposed`` is the rule's aggregate of every ``listed`` contribution, with
    the server momentum or without it (a proposer that just restarted, or an attempt after one
    voted down, has none), within float rounding. The proposer's screening chose the list, so
    none is screened here."""
    ids = sorted(c.contributor for c in listed)
    momenta = [momentum, 0.0] if momentum > 0 and previous_global is not None else [0.0]
    for server_momentum in momenta:
        expected, used = aggregate_contributions(
            global_state,
            listed,
            rule,
            None,
            momentum=server_momentum,
            previous_global=previous_global,
            population=population,
        )
        if sorted(used) == ids and is_close_state(proposed, expected):
            return True
    return False


def is_close_state(a: StateDict, b: StateDict) -> bool:
    """True when both states hold the same tensors up to float rounding (another machine's
    summation order), far below any step training takes."""
    return a.keys() == b.keys() and all(
        a[k].shape == b[k].shape
        and a[k].dtype == b[k].dtype
        and (
            torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7)
            if a[k].is_floating_point()
            else torch.equal(a[k], b[k])
        )
        for k in a
    )


def aggregate_contributions(
    global_state: StateDict,
    contributions: list[Contribution],
    rule: str | AggregationRule = Aggregation.SCREENED_MEAN,
    score: Callable[[StateDict], float] | None = None,
    screen_margin: float = 0.10,
    momentum: float = 0.0,
    previous_global: StateDict | None = None,
    population: int = 0,
) -> tuple[StateDict, list[str]]:
    """The aggregate weights and the ids of the contributions it used.

    With ``momentum`` > 0 (FedAvgM), the last global step, ``global - previous_global`` (both
    on the chain), is added times ``momentum``. ``population``: the validator count, for the
    rule (``AggregationRule.population``).
    """
    strategy = get_aggregation_rule(rule) if isinstance(rule, str) else rule
    strategy.population = population
    names = sorted(global_state)
    usable = sorted(
        (c for c in contributions if c.samples > 0 and is_finite_state(c.state)),
        key=lambda c: c.contributor,
    )
    if strategy.screens and score is not None and len(usable) > 1:
        scores = [score(c.state) for c in usable]
        median_score = float(torch.tensor(scores).median())
        usable = [
            c for c, s in zip(usable, scores, strict=True) if s >= median_score - screen_margin
        ]
    if not usable:
        return {k: v.clone() for k, v in global_state.items()}, []
    base = _flatten(global_state, names)
    deltas = compute_clipped_deltas(base, [_flatten(c.state, names) for c in usable])
    samples = torch.tensor([float(c.samples) for c in usable], dtype=torch.float64)
    combined = strategy.combine(deltas, samples)
    if momentum > 0 and previous_global is not None:
        combined = combined + momentum * (base - _flatten(previous_global, names))
    return _unflatten(base + combined, global_state, names), [c.contributor for c in usable]
