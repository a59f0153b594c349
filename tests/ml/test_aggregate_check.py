"""A validator re-computes a proposed aggregate from the contributions its block lists (§3.7),
and the winsorized mean cuts one party's extreme coordinates."""

from __future__ import annotations

import pytest
import torch

from learnchain.ml.aggregate import (
    Contribution,
    SoftWinsorizedMean,
    WinsorizedMean,
    aggregate_contributions,
    is_rule_aggregate,
)
from learnchain.ml.config import Aggregation
from learnchain.ml.data import load_digits_party
from learnchain.ml.learner import Learner
from learnchain.ml.tasks import TaskConfig, get_task

State = dict[str, torch.Tensor]


@pytest.fixture(scope="module")
def round_of_four() -> tuple[State, State, list[Contribution]]:
    """The global model, the one before it, and four parties' contributions."""
    task = get_task(TaskConfig())
    learners = [Learner(task, load_digits_party(i, 5, "dirichlet:0.5", 0)[0], i) for i in range(4)]
    base = learners[0].current()
    previous = {k: v - 0.001 for k, v in base.items()}
    return (
        base,
        previous,
        [Contribution(str(i), x.propose(), x.samples) for i, x in enumerate(learners)],
    )


@pytest.mark.parametrize(
    "rule",
    [Aggregation.CLIPPED_MEAN, Aggregation.WINSORIZED_MEAN, Aggregation.SOFT_WINSORIZED_MEAN],
)
def test_the_rules_aggregate_of_the_listed_contributions_is_verified(round_of_four, rule) -> None:  # type: ignore[no-untyped-def]
    base, previous, listed = round_of_four
    proposed, _ = aggregate_contributions(
        base, listed, rule, momentum=0.7, previous_global=previous
    )
    assert is_rule_aggregate(proposed, base, list(reversed(listed)), rule, 0.7, previous)


def test_an_aggregate_is_verified_with_the_chains_outer_learning_rate_only(round_of_four) -> None:  # type: ignore[no-untyped-def]
    base, previous, listed = round_of_four
    rule = Aggregation.CLIPPED_MEAN
    proposed, _ = aggregate_contributions(
        base, listed, momentum=0.7, previous_global=previous, learning_rate=0.7
    )
    assert is_rule_aggregate(proposed, base, listed, rule, 0.7, previous, learning_rate=0.7)
    assert not is_rule_aggregate(proposed, base, listed, rule, 0.7, previous)


def test_an_aggregate_without_server_momentum_is_verified_too(round_of_four) -> None:  # type: ignore[no-untyped-def]
    """A proposer that restarted, or an attempt after one voted down, has no last step."""
    base, previous, listed = round_of_four
    proposed, _ = aggregate_contributions(base, listed)
    assert is_rule_aggregate(proposed, base, listed, Aggregation.CLIPPED_MEAN, 0.7, previous)


def test_a_contributions_own_weights_are_not_the_aggregate(round_of_four) -> None:  # type: ignore[no-untyped-def]
    base, _, listed = round_of_four
    assert not is_rule_aggregate(listed[3].state, base, listed, Aggregation.CLIPPED_MEAN)


def test_an_aggregate_of_other_contributions_than_listed_is_refused(round_of_four) -> None:  # type: ignore[no-untyped-def]
    base, _, listed = round_of_four
    of_three, _ = aggregate_contributions(base, listed[:3])
    assert not is_rule_aggregate(of_three, base, listed, Aggregation.CLIPPED_MEAN)
    assert is_rule_aggregate(of_three, base, listed[:3], Aggregation.CLIPPED_MEAN)


def test_no_contributions_verify_no_change_of_model(round_of_four) -> None:  # type: ignore[no-untyped-def]
    base, _, listed = round_of_four
    assert not is_rule_aggregate(listed[0].state, base, [], Aggregation.CLIPPED_MEAN)


def test_a_nudge_far_below_a_training_step_is_still_caught(round_of_four) -> None:  # type: ignore[no-untyped-def]
    base, _, listed = round_of_four
    proposed, _ = aggregate_contributions(base, listed)
    name = sorted(proposed)[0]
    nudged = dict(proposed)
    nudged[name] = proposed[name].clone()
    nudged[name].view(-1)[0] += 1e-3
    assert not is_rule_aggregate(nudged, base, listed, Aggregation.CLIPPED_MEAN)


def test_float_rounding_of_another_machine_is_tolerated(round_of_four) -> None:  # type: ignore[no-untyped-def]
    base, _, listed = round_of_four
    proposed, _ = aggregate_contributions(base, listed)
    rounded = {k: torch.nextafter(v, v + 1) for k, v in proposed.items()}  # one ulp up everywhere
    assert is_rule_aggregate(rounded, base, listed, Aggregation.CLIPPED_MEAN)


def test_winsorizing_cuts_one_partys_extreme_coordinate_to_the_others_range() -> None:
    deltas = torch.tensor(
        [[0.0, 0.1], [0.0, 0.2], [0.0, 0.1], [9.0, 0.2]], dtype=torch.float64
    )  # the last party alone moves the first coordinate (a trigger's weights)
    step = WinsorizedMean().combine(deltas, torch.ones(4, dtype=torch.float64))
    assert step[0] == 0.0
    assert step[1] == pytest.approx(0.15)


def test_soft_winsorizing_lets_a_lone_value_out_by_two_fifths_of_the_median_peak() -> None:
    """The rows' peaks are 0.2, 0.3, 0.1 and 9.0, their (lower) median 0.2: the bounds widen by
    0.08. The lone 9.0 (a trigger's weight) is cut to 0.08, the 0.3 beside a 0.2 to 0.28, and
    values within the others' range are untouched."""
    deltas = torch.tensor(
        [[0.0, 0.1, 0.2], [0.0, 0.2, 0.3], [0.0, 0.1, 0.0], [9.0, 0.2, 0.0]], dtype=torch.float64
    )
    step = SoftWinsorizedMean().combine(deltas, torch.ones(4, dtype=torch.float64))
    assert step[0] == pytest.approx(0.08 / 4)
    assert step[1] == pytest.approx(0.15)
    assert step[2] == pytest.approx((0.2 + 0.28) / 4)
    zeros = torch.zeros(4, 3, dtype=torch.float64)
    assert torch.equal(SoftWinsorizedMean().combine(zeros, torch.ones(4)), torch.zeros(3))


def test_winsorizing_three_or_fewer_is_the_plain_mean() -> None:
    deltas = torch.tensor([[0.0], [0.0], [9.0]], dtype=torch.float64)
    step = WinsorizedMean().combine(deltas, torch.ones(3, dtype=torch.float64))
    assert step[0] == pytest.approx(3.0)


def test_listing_fewer_contributions_does_not_weaken_the_winsorizing() -> None:
    """Among seven validators k is 2 even when a proposer lists five: two colluders' extreme
    coordinates are both cut to what the honest moved."""
    deltas = torch.tensor([[0.0], [0.1], [0.1], [9.0], [9.0]], dtype=torch.float64)
    rule = WinsorizedMean()
    rule.population = 7
    step = rule.combine(deltas, torch.ones(5, dtype=torch.float64))
    assert step[0] == pytest.approx(0.1)
    rule.population = 0  # unknown: k from the five listed, 1, leaves one colluder's value in
    assert rule.combine(deltas, torch.ones(5, dtype=torch.float64))[0] > 1.0
