"""Reputation from the validators' appraisals (consensus/reputation.py): a contributor's own
report never counts, colluders below a third of the reporting stake cannot carry the statistic
past every honest report, and an aggregate leaves out only clearly negative reputations while the
contributors left in still hold more than the threshold."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from learnchain.consensus.reputation import (
    compute_decayed,
    compute_next_reputations,
    compute_others_statistic,
    compute_reputation_exclusions,
    compute_typical_magnitude,
)
from learnchain.consensus.types import Address, Threshold, is_quorum

TWO_THIRDS = Threshold.parse("2/3")


def address(i: int) -> Address:
    return Address(bytes([i]) * 20)


def test_a_contributors_own_report_does_not_count() -> None:
    reports = [(address(0), 900, 100), (address(1), -5, 100), (address(2), -7, 100)]
    assert compute_others_statistic(address(0), reports) == -5  # the higher of the others
    assert compute_others_statistic(address(0), [(address(0), 900, 100)]) is None


@given(
    honest=st.lists(st.integers(-(10**6), 10**6), min_size=3, max_size=8),
    forged=st.integers(-(10**7), 10**7),
    colluders=st.integers(0, 3),
)
def test_colluders_below_a_third_of_the_stake_cannot_carry_it_past_the_honest(
    honest: list[int], forged: int, colluders: int
) -> None:
    colluders = min(colluders, (len(honest) - 1) // 2)  # below a third of all the reports
    reports = [(address(i + 1), value, 100) for i, value in enumerate(honest)]
    reports += [(address(100 + i), forged, 100) for i in range(colluders)]
    found = compute_others_statistic(address(0), reports)
    assert found is not None and min(honest) <= found <= max(honest)


def test_an_honest_third_that_finds_a_contribution_useful_keeps_it_positive() -> None:
    # an unusual party: two of five others (whose data shares its classes) find it useful
    reports = [(address(i), v, 100) for i, v in ((1, 40), (2, 30), (3, -50), (4, -60), (5, -9))]
    assert compute_others_statistic(address(0), reports) == 30


def test_reputation_decays_and_adds_the_others_median() -> None:
    reports = [(address(i), [v, 10], 100) for i, v in ((0, 500), (1, -40), (2, -20), (3, -30))]
    updated = compute_next_reputations(
        {address(0): 1000}, [address(0), address(1)], reports, 500_000
    )
    assert updated[address(0)] == 500 - 30  # half of 1000, plus the second highest of three
    assert updated[address(1)] == 10


def test_a_left_out_contributor_keeps_only_what_it_earns() -> None:
    reports = [(address(i), [-50], 100) for i in (1, 2, 3)]
    updated = compute_next_reputations(
        {address(0): -1000}, [address(0)], reports, 950_000, {address(0)}, 500_000
    )
    assert updated[address(0)] == -500  # out of the model: its negative gains are not counted


def test_decay_rounds_toward_zero_on_both_sides() -> None:
    assert compute_decayed(-7, 500_000) == -3 and compute_decayed(7, 500_000) == 3


def test_the_lowest_clearly_negative_reputation_is_left_out_while_a_quorum_remains() -> None:
    contributors = [(address(i), 100) for i in range(5)]
    reputations = {
        address(0): 300,
        address(1): 250,
        address(2): 200,
        address(3): -900,
        address(4): -800,
    }
    # only one of five can go at 2/3 (four of five are needed), and the lowest goes first
    assert compute_reputation_exclusions(contributors, reputations, 500, TWO_THIRDS) == {address(3)}


def test_a_reputation_a_little_below_zero_is_not_left_out() -> None:
    contributors = [(address(i), 100) for i in range(5)]
    reputations = {
        address(0): 300,
        address(1): 250,
        address(2): 200,
        address(3): 150,
        address(4): -100,
    }
    assert compute_typical_magnitude(list(reputations.values())) == 200
    assert compute_reputation_exclusions(contributors, reputations, 500, TWO_THIRDS) == set()


@given(
    reputations=st.lists(st.integers(-(10**6), 10**6), min_size=1, max_size=9),
    powers=st.lists(st.integers(1, 1000), min_size=9, max_size=9),
)
def test_exclusions_are_negative_and_leave_more_than_the_threshold(
    reputations: list[int], powers: list[int]
) -> None:
    contributors = [(address(i), powers[i]) for i in range(len(reputations))]
    total = sum(powers)
    by_address = {address(i): r for i, r in enumerate(reputations)}
    excluded = compute_reputation_exclusions(contributors, by_address, total, TWO_THIRDS)
    assert all(by_address[a] < 0 for a in excluded)
    kept = sum(p for a, p in contributors if a not in excluded)
    assert not excluded or is_quorum(kept, total, TWO_THIRDS)
    if excluded:  # the lowest go first
        assert max(by_address[a] for a in excluded) <= min(
            by_address[a] for a, _ in contributors if a not in excluded
        )
