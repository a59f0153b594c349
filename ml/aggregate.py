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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from learnchain.ml.codec import StateDict
from learnchain.ml.config import AGGREGATION_NAMES, Aggregation, is_plugin_name
from learnchain.ml.errors import TaskError
from learnchain.ml.kept_updates import (
    compute_kept_norms,
    iter_kept_columns_combined,
    iter_kept_combined,
    read_all_kept,
    read_kept_update,
)
from learnchain.ml.plugins import import_class, register_class
from learnchain.ml.weights_file import StateSource, TensorSource, WeightsLayout, collect_state


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
    # True: each coordinate's result depends only on that coordinate's updates, so ``combine``
    # is called on slices of the parameters in turn (memory bounded by a slice); False: on the
    # whole matrix of updates at once (a rule that compares whole updates, such as Krum)
    coordinate_wise: ClassVar[bool] = True

    @abstractmethod
    def combine(self, deltas: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        """One update from ``deltas`` (contributions × parameters, float64: a slice of the
        parameters when ``coordinate_wise``) and each contribution's self-reported
        ``samples``."""


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
        # row after row, in the contributions' order: torch's own sum over rows groups them by
        # the rows' count and length, which a sparse codec's kept values could not follow
        # (``iter_kept_combined``)
        total = torch.zeros(deltas.shape[1], dtype=deltas.dtype)
        for row, weight in zip(deltas, compute_row_weights(samples), strict=True):
            total += row * weight
        return total


def compute_row_weights(samples: torch.Tensor) -> torch.Tensor:
    """Each contribution's weight in the clipped mean: its sample count, capped at twice the
    median count, over their sum."""
    weights = samples.clamp_max(2 * samples.median())
    return weights / weights.sum()


def is_weighted_sum(strategy: AggregationRule) -> bool:
    """True when the rule combines by ``ClippedMean``'s own weighted sum of rows (not a rule
    that overrides it)."""
    return strategy.coordinate_wise and type(strategy).combine is ClippedMean.combine


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
    # each bound widened by this share of the contributions' median peak (largest magnitude)
    slack: ClassVar[float] = 0.0

    def combine(self, deltas: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        count = deltas.shape[0]
        k = min((max(count, self.population) - 1) // 3, (count - 1) // 2)
        if k == 0:
            return super().combine(deltas, samples)
        ordered = deltas.sort(dim=0).values
        low, high = ordered[k], ordered[count - 1 - k]
        if self.slack:
            margin = self.slack * compute_median_peak(deltas)
            low, high = low - margin, high + margin
        return super().combine(deltas.clamp(low, high), samples)


@register_aggregation
class SoftWinsorizedMean(WinsorizedMean):
    """The winsorized mean with each bound widened by two fifths of the contributions' median
    peak in the slice: a value that no other party moved is still cut, to within that margin,
    so one party's trigger weights stay small, while a sparse codec's honest updates (most of
    whose coordinates only one party moves) keep their largest changes in part. With top-k, the
    backdoor gets through no more often than with float32 under this rule, and less often than
    under the default one (bench/README.md, "A winsorized mean with slack")."""

    name = Aggregation.SOFT_WINSORIZED_MEAN
    slack = 0.4


def compute_median_peak(deltas: torch.Tensor) -> torch.Tensor:
    """The median (the lower one, for an even count) over the rows of each row's largest
    magnitude."""
    return deltas.abs().amax(dim=1).median()


@register_aggregation
class CoordinateMedian(AggregationRule):
    """Coordinate-wise median."""

    name = Aggregation.MEDIAN

    def combine(self, deltas: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        return deltas.median(dim=0).values


def is_moved_columns_rule(strategy: AggregationRule) -> bool:
    """True when the rule combines by a built-in coordinate-wise combination that maps a column
    of zeros to zero and needs no other column but the slice's rows' peaks, which zeros do not
    change (the winsorized means, the median): a sparse codec's updates are then combined over
    the positions they kept (``iter_kept_columns_combined``)."""
    return strategy.coordinate_wise and type(strategy).combine in (
        WinsorizedMean.combine,
        CoordinateMedian.combine,
    )


def is_finite_state(state: StateDict) -> bool:
    """True when every floating tensor is finite."""
    return all(bool(torch.isfinite(t).all()) for t in state.values() if t.is_floating_point())


@dataclass(frozen=True)
class ListedSource:
    """A contribution's weights as a ``TensorSource`` (a file, or a state dict in memory)."""

    contributor: str
    source: TensorSource
    samples: int


def compute_update_norms(
    base: TensorSource, sources: Sequence[TensorSource], layout: WeightsLayout
) -> torch.Tensor:
    """Each source's update norm from ``base`` (float64): a sparse codec's update from ``base``
    from its kept values alone (``compute_kept_norms``), any other slice by slice. Each norm
    depends on its own source only, however they are listed together."""
    norms = torch.zeros(len(sources), dtype=torch.float64)
    found = [read_kept_update(base, source, layout) for source in sources]
    kept = {i: updates for i, updates in enumerate(found) if updates is not None}
    if kept:
        norms[list(kept)] = compute_kept_norms(base, list(kept.values()), layout)
    dense = [i for i in range(len(sources)) if i not in kept]
    if not dense:
        return norms
    squares = torch.zeros(len(dense), dtype=torch.float64)
    for name, start, stop in layout.iter_slices():
        base_slice = base.read_flat(name, start, stop).to(torch.float64)
        for row, i in enumerate(dense):
            delta = sources[i].read_flat(name, start, stop).to(torch.float64) - base_slice
            squares[row] += torch.dot(delta, delta)
    norms[dense] = squares.sqrt()
    return norms


def compute_clip_scales(norms: torch.Tensor) -> torch.Tensor:
    """Each update's factor that clips it to the median update norm (1 when within it)."""
    median_norm = norms.median()
    return torch.where(
        norms > median_norm, median_norm / norms.clamp_min(1e-12), torch.ones_like(norms)
    )


def iter_combined(
    base: TensorSource,
    listed: Sequence[ListedSource],
    strategy: AggregationRule,
    layout: WeightsLayout,
    norms: torch.Tensor | None = None,
) -> Iterator[tuple[str, int, int, torch.Tensor, torch.Tensor]]:
    """(name, start, stop, base slice, combined step slice), float64, for every slice of the
    layout in order: the rule's combination of the listed contributions' clipped updates. A
    coordinate-wise rule combines slice by slice, so memory stays at the contributions times
    one slice; another gets the whole matrix of updates at once. ``norms``: the updates' norms
    when already known (computed as each contribution arrived), else read here first."""
    if norms is None:
        norms = compute_update_norms(base, [c.source for c in listed], layout)
    scales = compute_clip_scales(norms)
    samples = torch.tensor([float(c.samples) for c in listed], dtype=torch.float64)
    # a sparse codec's updates (top-k) under the clipped mean, or a rule that needs only the
    # columns they moved: from their kept values alone
    weighted_sum = is_weighted_sum(strategy)
    kept = (
        read_all_kept(base, [c.source for c in listed], layout)
        if weighted_sum or is_moved_columns_rule(strategy)
        else None
    )
    if kept is not None:
        if weighted_sum:
            weights = compute_row_weights(samples)
            yield from iter_kept_combined(base, kept, scales, weights, layout)
        else:
            yield from iter_kept_columns_combined(
                base, kept, scales, strategy.combine, samples, layout
            )
        return

    def read_deltas(name: str, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        base_slice = base.read_flat(name, start, stop).to(torch.float64)
        deltas = torch.empty((len(listed), stop - start), dtype=torch.float64)
        for row, contribution in zip(deltas, listed, strict=True):
            row.copy_(contribution.source.read_flat(name, start, stop))
        deltas -= base_slice
        deltas *= scales.unsqueeze(1)
        return base_slice, deltas

    if strategy.coordinate_wise:
        for name, start, stop in layout.iter_slices():
            base_slice, deltas = read_deltas(name, start, stop)
            yield name, start, stop, base_slice, strategy.combine(deltas, samples)
        return
    slices = list(layout.iter_slices())
    pieces = [read_deltas(*where) for where in slices]
    combined = strategy.combine(torch.cat([deltas for _, deltas in pieces], dim=1), samples)
    offset = 0
    for (name, start, stop), (base_slice, _) in zip(slices, pieces, strict=True):
        yield name, start, stop, base_slice, combined[offset : offset + stop - start]
        offset += stop - start


def iter_aggregate(
    base: TensorSource,
    listed: Sequence[ListedSource],
    strategy: AggregationRule,
    layout: WeightsLayout,
    momentum: float = 0.0,
    previous: TensorSource | None = None,
    norms: torch.Tensor | None = None,
    learning_rate: float = 1.0,
) -> Iterator[torch.Tensor]:
    """The aggregate, one float64 slice at a time in ``layout.iter_slices()`` order: the base
    plus the server's step on the rule's combined step (``compute_server_step``), with momentum
    when ``previous`` (the global model before ``base``) is given."""
    combined = iter_combined(base, listed, strategy, layout, norms)
    for name, start, stop, base_slice, step in combined:
        last = None
        if momentum > 0 and previous is not None:
            last = base_slice - previous.read_flat(name, start, stop).to(torch.float64)
        yield base_slice + compute_server_step(step, last, momentum, learning_rate)


def compute_server_step(
    step: torch.Tensor, last: torch.Tensor | None, momentum: float, learning_rate: float
) -> torch.Tensor:
    """The outer optimizer's step on the rule's combined step (the pseudo-gradient): SGD with
    heavy-ball momentum, FedAvgM (Hsu et al. 2019; DiLoCo's outer SGD with momentum) with the
    last global step ``last`` (on the chain) as its velocity: ``learning_rate`` times ``step``
    plus ``momentum`` times ``last`` (none without it)."""
    if learning_rate != 1.0:
        step = learning_rate * step
    return step if last is None else step + momentum * last


def select_usable(
    contributions: Sequence[Contribution],
    strategy: AggregationRule,
    score: Callable[[StateDict], float] | None,
    screen_margin: float,
) -> list[Contribution]:
    """The contributions the rule combines, in id order: finite, with samples, and when the
    rule screens, scoring within ``screen_margin`` of the median contribution."""
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
    return usable


def is_rule_aggregate_of(
    proposed: TensorSource,
    base: TensorSource,
    listed: Sequence[ListedSource],
    rule: str | AggregationRule,
    layout: WeightsLayout,
    momentum: float = 0.0,
    previous: TensorSource | None = None,
    population: int = 0,
    norms: torch.Tensor | None = None,
    learning_rate: float = 1.0,
) -> bool:
    """True when ``proposed`` is the rule's aggregate of every ``listed`` contribution, with
    the server momentum or without it (a proposer that just restarted, or an attempt after one
    voted down, has none), within float rounding; slice by slice, stopping at the first slice
    that matches neither."""
    if any(c.samples <= 0 for c in listed):
        return False
    if not listed:  # the rule's aggregate of nothing is the model itself
        return all(
            is_close_slice(proposed.read_flat(*where), base.read_flat(*where))
            for where in layout.iter_slices()
        )
    strategy = get_aggregation_rule(rule) if isinstance(rule, str) else rule
    strategy.population = population
    order = sorted(range(len(listed)), key=lambda i: listed[i].contributor)
    ordered = [listed[i] for i in order]
    ordered_norms = None if norms is None else norms[order]
    with_momentum = momentum > 0 and previous is not None
    candidates = {True, False} if with_momentum else {False}
    combined = iter_combined(base, ordered, strategy, layout, ordered_norms)
    for name, start, stop, base_slice, step in combined:
        got = proposed.read_flat(name, start, stop)
        dtype = layout.specs[name].dtype
        for use_momentum in list(candidates):
            last = None
            if use_momentum:
                assert previous is not None
                last = base_slice - previous.read_flat(name, start, stop).to(torch.float64)
            expected = base_slice + compute_server_step(step, last, momentum, learning_rate)
            if not is_close_slice(got, expected.to(dtype)):
                candidates.discard(use_momentum)
        if not candidates:
            return False
    return True


def is_close_slice(a: torch.Tensor, b: torch.Tensor) -> bool:
    """True when two slices hold the same values up to float rounding (another machine's
    summation order), far below any step training takes."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point():
        return torch.allclose(a, b, rtol=1e-5, atol=1e-7)
    return torch.equal(a, b)


def is_rule_aggregate(
    proposed: StateDict,
    global_state: StateDict,
    listed: list[Contribution],
    rule: str | AggregationRule,
    momentum: float = 0.0,
    previous_global: StateDict | None = None,
    population: int = 0,
    learning_rate: float = 1.0,
) -> bool:
    """``is_rule_aggregate_of`` for state dicts in memory (non-finite contributions make it
    False, as the rule would drop them)."""
    layout = WeightsLayout.of_state(global_state)
    if WeightsLayout.of_state(proposed).specs != layout.specs:
        return False
    if not all(is_finite_state(c.state) for c in listed):
        return False
    return is_rule_aggregate_of(
        StateSource(proposed),
        StateSource(global_state),
        [ListedSource(c.contributor, StateSource(c.state), c.samples) for c in listed],
        rule,
        layout,
        momentum,
        None if previous_global is None else StateSource(previous_global),
        population,
        learning_rate=learning_rate,
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
    learning_rate: float = 1.0,
) -> tuple[StateDict, list[str]]:
    """The aggregate weights and the ids of the contributions it used.

    With ``momentum`` > 0 (FedAvgM), the last global step, ``global - previous_global`` (both
    on the chain), is added times ``momentum``; the rule's combined step is taken times
    ``learning_rate`` (the outer learning rate). ``population``: the validator count, for the
    rule (``AggregationRule.population``).
    """
    strategy = get_aggregation_rule(rule) if isinstance(rule, str) else rule
    strategy.population = population
    usable = select_usable(contributions, strategy, score, screen_margin)
    if not usable:
        return {k: v.clone() for k, v in global_state.items()}, []
    layout = WeightsLayout.of_state(global_state)
    values = iter_aggregate(
        StateSource(global_state),
        [ListedSource(c.contributor, StateSource(c.state), c.samples) for c in usable],
        strategy,
        layout,
        momentum,
        None if previous_global is None else StateSource(previous_global),
        learning_rate=learning_rate,
    )
    return collect_state(layout, values), [c.contributor for c in usable]
