"""Rewards for useful contributions and deposits that bad ones forfeit (docs/protocol.md §3.5).

A block that changes the model in aggregate mode pays its proposer at once; the contributors'
share of the reward waits one block. Each validator that precommits such a block also measures
every contribution's *value* on its private vote set: the score of the aggregate minus the score
of the aggregate with that contribution left out (a second vote extension, ``values``, in the
contributions' block order). The next block's last commit brings the values on chain and
``compute_settlement`` settles the waiting share:

- each contribution's value is the stake-weighted median of the values reported for it, when
  validators holding more than half of the stake reported (else the share is split equally, as
  when nobody measures);
- the share is minted in proportion to the positive values (a contribution that changes nothing,
  such as an untrained copy of the model, earns nothing);
- a contribution whose value is below ``-forfeit_margin`` (the aggregate is clearly better
  without it) forfeits ``contribution_deposit`` from its author's bond, paid to the
  contributions with positive values in proportion to them (burned when there are none).

Tokens are conserved: a settlement mints exactly ``minted``, burns exactly ``burned`` and moves
the rest from bonds to accounts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from learnchain.consensus.encoding import encode_bytes, encode_list, encode_uint
from learnchain.consensus.learning_record import compute_weighted_median
from learnchain.consensus.messages import Commit
from learnchain.consensus.params import ChainParams
from learnchain.consensus.types import Address, Height, Tokens
from learnchain.consensus.validators import ValidatorSet


@dataclass(frozen=True, slots=True)
class PendingShare:
    """The contributors' share of a block's reward, waiting for their values."""

    height: Height  # the block whose contributions these are
    contributors: tuple[Address, ...]  # in the block's contribution order
    pool: Tokens

    def encode(self) -> bytes:
        """Canonical bytes (part of the state root)."""
        return (
            encode_uint(self.height)
            + encode_list(encode_bytes(a) for a in self.contributors)
            + encode_uint(self.pool)
        )


@dataclass(frozen=True, slots=True)
class Settlement:
    """What settling a pending share moves: rewards minted, deposits forfeited and paid on."""

    rewards: dict[Address, int]  # minted into accounts
    forfeits: dict[Address, int]  # taken from bonds
    transfers: dict[Address, int]  # forfeited tokens paid into accounts
    burned: int  # forfeited tokens nobody earned

    @property
    def minted(self) -> int:
        """New tokens."""
        return sum(self.rewards.values())


def compute_contribution_values(
    commit: Commit, validators: ValidatorSet, count: int
) -> tuple[int, ...] | None:
    """Each contribution's stake-weighted median value from the precommits in ``commit`` that
    value all ``count`` contributions; None unless those hold more than half of the power."""
    reports = [
        (sig.values, validator.power)
        for sig in commit.signatures
        if len(sig.values) == count
        and (validator := validators.get_validator(sig.validator)) is not None
    ]
    if count == 0 or 2 * sum(power for _, power in reports) <= validators.total_power:
        return None
    return tuple(
        compute_weighted_median([(values[i], power) for values, power in reports])
        for i in range(count)
    )


def compute_proportional_split(amount: int, weights: Mapping[Address, int]) -> dict[Address, int]:
    """``amount`` split in proportion to positive ``weights``, rounded down (the rest unpaid)."""
    total = sum(weights.values())
    if amount <= 0 or total <= 0:
        return {}
    return {address: amount * weight // total for address, weight in sorted(weights.items())}


def compute_settlement(
    pending: PendingShare,
    values: tuple[int, ...] | None,
    bonded: Mapping[Address, int],
    params: ChainParams,
) -> Settlement:
    """Settle ``pending`` with the contributions' ``values`` (None: not measured), given each
    contributor's bonded tokens."""
    if values is None:
        each = pending.pool // len(pending.contributors) if pending.contributors else 0
        return Settlement({a: each for a in pending.contributors if each}, {}, {}, 0)
    useful = {a: v for a, v in zip(pending.contributors, values, strict=True) if v > 0}
    rewards = compute_proportional_split(pending.pool, useful)
    forfeits = {
        address: min(params.contribution_deposit, bonded.get(address, 0))
        for address, value in zip(pending.contributors, values, strict=True)
        if value < -params.forfeit_margin
    }
    forfeits = {a: amount for a, amount in forfeits.items() if amount > 0}
    forfeited = sum(forfeits.values())
    transfers = compute_proportional_split(forfeited, useful)
    return Settlement(
        {a: r for a, r in rewards.items() if r},
        forfeits,
        {a: t for a, t in transfers.items() if t},
        forfeited - sum(transfers.values()),
    )


def compute_pending_share(
    params: ChainParams, height: Height, contributors: tuple[Address, ...]
) -> tuple[Tokens, PendingShare | None]:
    """The proposer's part of an aggregate-mode model update's reward, and the contributors'
    part that waits for their values (None without contributors or reward)."""
    if not contributors or params.block_reward == 0:
        return params.block_reward, None
    pool = params.block_reward * (100 - params.proposer_reward_percent) // 100
    return Tokens(params.block_reward - pool), PendingShare(height, contributors, Tokens(pool))
