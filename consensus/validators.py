"""Validator sets and stake-weighted proposer selection.

The selection is CometBFT's weighted round-robin with proposer priorities
(spec/consensus/proposer-selection.md): every step each validator's priority grows by its power,
the highest priority proposes and pays the total power back. New validators start at -1.125 * the
total power, so joining cannot jump the queue; priorities are re-centred and their spread bounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache

from learnchain.consensus.encoding import (
    encode_bytes,
    encode_int,
    encode_list,
    encode_str,
    encode_uint,
)
from learnchain.consensus.types import Address, PublicKey, Stake, Threshold, is_quorum

PRIORITY_WINDOW_SIZE_FACTOR = 2


@dataclass(frozen=True, slots=True)
class Validator:
    """A validator with its voting power (bonded stake) and proposer priority."""

    address: Address
    public_key: PublicKey
    power: Stake
    priority: int = 0
    endpoint: str = ""

    def encode(self) -> bytes:
        """Canonical bytes."""
        return (
            encode_bytes(self.address)
            + encode_bytes(self.public_key)
            + encode_uint(self.power)
            + encode_int(self.priority)
            + encode_str(self.endpoint)
        )


def compute_truncated_division(numerator: int, denominator: int) -> int:
    """Integer division rounding toward zero (Go's ``/``, which CometBFT's arithmetic uses)."""
    quotient = abs(numerator) // abs(denominator)
    return quotient if (numerator >= 0) == (denominator > 0) else -quotient


@dataclass(frozen=True, slots=True)
class ValidatorSet:
    """An immutable, address-sorted validator set and its current proposer."""

    validators: tuple[Validator, ...]
    proposer: Address
    total_power: Stake = field(init=False, compare=False, repr=False)
    _by_address: dict[Address, Validator] = field(init=False, compare=False, repr=False)
    _encoded: list[bytes] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total_power", Stake(sum(v.power for v in self.validators)))
        object.__setattr__(self, "_by_address", {v.address: v for v in self.validators})
        object.__setattr__(self, "_encoded", [])

    def get_power(self, address: Address) -> Stake:
        """A validator's power, zero for a non-member."""
        validator = self._by_address.get(address)
        return Stake(0) if validator is None else validator.power

    def is_quorum_of(self, addresses: Iterable[Address], threshold: Threshold) -> bool:
        """True when the members among ``addresses`` hold more than ``threshold`` of the power."""
        power = sum(self.get_power(address) for address in addresses)
        return is_quorum(power, self.total_power, threshold)

    def get_validator(self, address: Address) -> Validator | None:
        """The member with ``address``, if any."""
        return self._by_address.get(address)

    def get_powers(self) -> dict[Address, Stake]:
        """Power by address."""
        return {v.address: v.power for v in self.validators}

    def encode(self) -> bytes:
        """Canonical bytes (computed once)."""
        if not self._encoded:
            self._encoded.append(
                encode_list(v.encode() for v in self.validators) + encode_bytes(self.proposer)
            )
        return self._encoded[0]

    @staticmethod
    def from_genesis(validators: Iterable[Validator]) -> ValidatorSet:
        """The initial set: every member new, then one increment to choose the first proposer."""
        empty = ValidatorSet((), Address(b""))
        return compute_incremented(
            compute_updated(empty, {v.address: v for v in validators}), times=1
        )


def compute_proposer_of_round(validator_set: ValidatorSet, round_: int) -> Address:
    """The proposer at round ``round_`` of the height that ``validator_set`` is for."""
    if round_ == 0:
        return validator_set.proposer
    return compute_incremented(validator_set, times=round_).proposer


def compute_incremented(validator_set: ValidatorSet, times: int) -> ValidatorSet:
    """Advance the proposer priorities ``times`` steps (CometBFT IncrementProposerPriority)."""
    if times == 1:
        return _compute_incremented_once(validator_set)
    return _compute_incremented(validator_set, times)


@lru_cache(maxsize=4096)
def _compute_incremented_once(validator_set: ValidatorSet) -> ValidatorSet:
    # Every block advances the set once, and priorities cycle (with equal powers, every N
    # heights), so a replay or catch-up asks the same question again and again.
    return _compute_incremented(validator_set, 1)


def _compute_incremented(validator_set: ValidatorSet, times: int) -> ValidatorSet:
    if times <= 0:
        raise ValueError("priorities advance at least once")
    validators = list(validator_set.validators)
    if not validators:
        raise ValueError("an empty validator set has no proposer")
    total = sum(v.power for v in validators)
    priorities = _compute_rescaled(
        [v.priority for v in validators], PRIORITY_WINDOW_SIZE_FACTOR * total
    )
    average = sum(priorities) // len(priorities)
    priorities = [p - average for p in priorities]
    powers = [v.power for v in validators]
    addresses = [v.address for v in validators]
    chosen = 0
    for _ in range(times):
        for i, power in enumerate(powers):
            priorities[i] += power
        chosen = 0
        for i in range(1, len(priorities)):
            if priorities[i] > priorities[chosen] or (
                priorities[i] == priorities[chosen] and addresses[i] < addresses[chosen]
            ):
                chosen = i
        priorities[chosen] -= total
    return ValidatorSet(
        tuple(
            Validator(v.address, v.public_key, v.power, p, v.endpoint)
            for v, p in zip(validators, priorities, strict=True)
        ),
        addresses[chosen],
    )


def _compute_rescaled(priorities: list[int], window: int) -> list[int]:
    """Shrink the priorities so their spread is at most ``window`` (CometBFT RescalePriorities)."""
    if not priorities or window <= 0:
        return priorities
    spread = max(priorities) - min(priorities)
    if spread <= window:
        return priorities
    ratio = (spread + window - 1) // window
    return [compute_truncated_division(p, ratio) for p in priorities]


def compute_updated(
    validator_set: ValidatorSet, changes: Mapping[Address, Validator]
) -> ValidatorSet:
    """Apply power changes (power 0 removes); new members start at -1.125 * the new total power.

    The proposer field is left as it was; ``compute_incremented`` chooses the next one.
    """
    current = {v.address: v for v in validator_set.validators}
    total_after = sum(
        (changes[a].power if a in changes else v.power) for a, v in current.items()
    ) + sum(c.power for a, c in changes.items() if a not in current)
    joining_priority = -(total_after + (total_after >> 3))
    for address, change in changes.items():
        if change.power == 0:
            current.pop(address, None)
        elif address in current:
            current[address] = replace(
                current[address],
                power=change.power,
                endpoint=change.endpoint or current[address].endpoint,
            )
        else:
            current[address] = replace(change, priority=joining_priority)
    validators = [current[a] for a in sorted(current)]
    if validators:
        total = sum(v.power for v in validators)
        priorities = _compute_rescaled(
            [v.priority for v in validators], PRIORITY_WINDOW_SIZE_FACTOR * total
        )
        average = sum(priorities) // len(priorities)
        validators = [
            replace(v, priority=p - average) for v, p in zip(validators, priorities, strict=True)
        ]
    return ValidatorSet(tuple(validators), validator_set.proposer)
