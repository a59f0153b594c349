"""Stake-weighted proposer selection (CometBFT's weighted round-robin with priorities)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from learnchain.consensus.types import Address, PublicKey, Stake
from learnchain.consensus.validators import (
    Validator,
    ValidatorSet,
    compute_incremented,
    compute_proposer_of_round,
    compute_truncated_division,
    compute_updated,
)


def make_set(powers: list[int]) -> ValidatorSet:
    return ValidatorSet.from_genesis(
        Validator(Address(bytes([i]) * 20), PublicKey(bytes([i]) * 32), Stake(p))
        for i, p in enumerate(powers)
    )


def proposer_sequence(validator_set: ValidatorSet, heights: int) -> list[Address]:
    sequence = []
    for _ in range(heights):
        sequence.append(validator_set.proposer)
        validator_set = compute_incremented(validator_set, times=1)
    return sequence


def test_proposals_follow_stake_over_many_heights() -> None:
    powers = [1, 1, 2, 3, 5, 8, 13]
    counts = Counter(proposer_sequence(make_set(powers), 3300))
    for i, power in enumerate(powers):
        assert counts[Address(bytes([i]) * 20)] == 100 * power


def test_equal_stakes_take_turns() -> None:
    sequence = proposer_sequence(make_set([10, 10, 10, 10]), 8)
    assert len(set(sequence[:4])) == 4
    assert sequence[:4] == sequence[4:]


def test_a_new_validator_cannot_jump_the_queue() -> None:
    validator_set = make_set([10, 10, 10, 10])
    for _ in range(3):
        validator_set = compute_incremented(validator_set, times=1)
    newcomer = Validator(Address(b"\xff" * 20), PublicKey(b"\xff" * 32), Stake(40))
    validator_set = compute_updated(validator_set, {newcomer.address: newcomer})
    sequence = proposer_sequence(compute_incremented(validator_set, times=1), 4)
    assert newcomer.address not in sequence[:2]


def test_removed_validators_never_propose_again() -> None:
    validator_set = make_set([10, 20, 30])
    gone = Address(bytes([2]) * 20)
    removal = Validator(gone, PublicKey(bytes([2]) * 32), Stake(0))
    validator_set = compute_incremented(compute_updated(validator_set, {gone: removal}), times=1)
    assert gone not in proposer_sequence(validator_set, 50)


def test_later_rounds_move_to_other_proposers() -> None:
    validator_set = make_set([10, 10, 10])
    proposers = {compute_proposer_of_round(validator_set, r) for r in range(3)}
    assert len(proposers) == 3


def test_truncated_division_rounds_toward_zero_like_go() -> None:
    assert compute_truncated_division(7, 2) == 3
    assert compute_truncated_division(-7, 2) == -3
    assert compute_truncated_division(7, -2) == -3


powers_strategy = st.lists(st.integers(min_value=1, max_value=10**9), min_size=1, max_size=20)


@settings(max_examples=60, deadline=None)
@given(powers=powers_strategy, heights=st.integers(min_value=1, max_value=40))
def test_the_proposer_sequence_is_a_pure_function_of_the_validator_set(
    powers: list[int], heights: int
) -> None:
    assert proposer_sequence(make_set(powers), heights) == proposer_sequence(
        make_set(list(powers)), heights
    )


@settings(max_examples=60, deadline=None)
@given(powers=powers_strategy, heights=st.integers(min_value=1, max_value=60))
def test_priorities_stay_centred_and_bounded(powers: list[int], heights: int) -> None:
    validator_set = make_set(powers)
    total = sum(powers)
    for _ in range(heights):
        validator_set = compute_incremented(validator_set, times=1)
        priorities = [v.priority for v in validator_set.validators]
        assert max(priorities) - min(priorities) <= 3 * total
        assert validator_set.proposer in {v.address for v in validator_set.validators}
