"""A validator set tells whether some of its members hold a quorum of its power."""

from __future__ import annotations

from learnchain.consensus.types import Address, PublicKey, Stake, Threshold
from learnchain.consensus.validators import Validator, ValidatorSet

TWO_THIRDS = Threshold.parse("2/3")


def address(i: int) -> Address:
    return Address(bytes([i]) * 20)


def make_set(powers: list[int]) -> ValidatorSet:
    return ValidatorSet.from_genesis(
        Validator(address(i), PublicKey(bytes([i]) * 32), Stake(p)) for i, p in enumerate(powers)
    )


def test_a_quorum_is_strictly_more_than_the_threshold_of_the_power() -> None:
    validators = make_set([100, 100, 100])
    assert not validators.is_quorum_of([address(0), address(1)], TWO_THIRDS)  # exactly 2/3
    assert validators.is_quorum_of([address(0), address(1), address(2)], TWO_THIRDS)


def test_non_members_hold_no_power() -> None:
    validators = make_set([100, 100, 100])
    assert not validators.is_quorum_of([address(0), address(1), address(9)], TWO_THIRDS)
