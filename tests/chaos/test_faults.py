"""A chaos schedule: reproducible from its seed, every kind in a long enough run, equivocation
last (it jails its validator), faults one at a time within the run."""

from __future__ import annotations

import itertools

import pytest

from tests.chaos.faults import (
    BYZANTINE_KINDS,
    MAX_QUIET_SECONDS,
    MIN_BYZANTINE_SECONDS,
    FaultKind,
    compute_schedule,
    parse_kinds,
)

ALL = list(FaultKind)


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another() -> None:
    first = compute_schedule(7, 600, 4, ALL, byzantine=3)
    assert first == compute_schedule(7, 600, 4, ALL, byzantine=3)
    assert first != compute_schedule(8, 600, 4, ALL, byzantine=3)


@pytest.mark.parametrize("seed", range(5))
def test_a_ten_minute_run_has_every_kind_and_ends_with_equivocation(seed: int) -> None:
    schedule = compute_schedule(seed, 600, 4, ALL, byzantine=3)
    assert {fault.kind for fault in schedule} == set(FaultKind)
    assert schedule[-1].kind == FaultKind.EQUIVOCATE
    assert [f.kind for f in schedule].count(FaultKind.EQUIVOCATE) == 1


@pytest.mark.parametrize("seed", range(5))
def test_faults_come_one_at_a_time_and_end_with_time_to_recover(seed: int) -> None:
    schedule = compute_schedule(seed, 300, 5, ALL, byzantine=4)
    for before, after in itertools.pairwise(schedule):
        assert after.at >= before.at + before.seconds
    last = schedule[-1]
    assert last.at + last.seconds + MAX_QUIET_SECONDS <= 300


def test_byzantine_faults_target_the_byzantine_validator_and_the_others_honest_ones() -> None:
    for fault in compute_schedule(3, 3000, 4, ALL, byzantine=3):
        if fault.kind in BYZANTINE_KINDS:
            assert fault.nodes == (3,)
            assert fault.seconds >= MIN_BYZANTINE_SECONDS  # time to restart, then misbehave
        elif fault.kind in (FaultKind.KILL, FaultKind.PAUSE, FaultKind.DISK_FULL):
            assert fault.nodes != (3,)


def test_only_the_kinds_asked_for() -> None:
    kinds = [FaultKind.KILL, FaultKind.PARTITION]
    assert {f.kind for f in compute_schedule(0, 600, 4, kinds, byzantine=3)} == set(kinds)


def test_kinds_are_parsed_from_names_and_an_unknown_one_is_named() -> None:
    assert parse_kinds("all") == ALL
    assert parse_kinds("kill, delay") == [FaultKind.KILL, FaultKind.DELAY]
    with pytest.raises(ValueError, match="'flood'"):
        parse_kinds("kill,flood")
