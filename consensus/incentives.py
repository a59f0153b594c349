"""Rewards for useful contributions and deposits that harmful ones forfeit (docs/protocol.md
§3.5).

A block that changes the model in aggregate mode pays its proposer at once; the contributors'
share of the reward waits one block. Each validator that approves such a block also appraises
every contribution on its private data (ml/contribution_value.py) and signs one number per
contribution into its precommit (``Vote.values``, in the block's contribution order): how much
the contribution lowers the aggregate's loss (0 or more), or, when it finds the contribution
harmful, a negative number. The next block's last commit brings the values on chain and
``compute_settlement`` settles the waiting share:

- the values count when validators holding more than half of the stake reported them all (else
  the share is split equally, as when nobody appraises);
- a contribution is **harmful** when validators holding more than the chain's threshold of stake
  report a value below ``-forfeit_margin``: it forfeits ``contribution_deposit`` from its
  author's bond, paid to the useful contributions in proportion to their values (burned when
  there are none). A harmful verdict is a vote, with the vote's threshold;
- the share is minted in proportion to the other contributions' positive stake-weighted median
  values; a contribution that changes nothing, such as an untrained copy of the model, is worth
  0 and earns nothing.

Tokens are conserved: a settlement mints exactly ``minted``, burns exactly ``burned`` and moves
the rest from bonds to accounts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from learnchain.consensus.encoding import encode_bytes, encode_list, encode_uint
from learnchain.consensus.learning_record import compute_weighted_median
from learnchain.consensus.messages import Commit
from learnchain.consensus.params import ChainParams
from learnchain.consensus.types import Address, Height, Tokens, is_quorum
from learnchain.consensus.validators import ValidatorSet


@dataclass(frozen=True, slots=True)
class PendingShare:
    """The contributors' share of a block's reward, waiting for their values."""

    height: Height  # the block whose contributions these are
    contributors: tuple[Address, ...]  # in the block's contribution order
    pool: Tokens
    # Proposers of the height's updates that the vote rejected (§3.6): each forfeits
    # proposal_deposit at the settlement, paid to the useful contributions by value.
    rejected: tuple[Address, ...] = ()
    # Authors of the contributions the proposer's screening left out, in the block's order: they
    # earn nothing, and forfeit contribution_deposit when the validators find them harmful.
    screened: tuple[Address, ...] = ()

    @property
    def judged(self) -> tuple[Address, ...]:
        """Whose contributions the validators' values are of, in the precommits' order."""
        return self.contributors + self.screened

    def encode(self) -> bytes:
        """Canonical bytes (part of the state root); without screened-out contributions, the
        bytes from before blocks listed them."""
        encoded = (
            encode_uint(self.height)
            + encode_list(encode_bytes(a) for a in self.contributors)
            + encode_uint(self.pool)
            + encode_list(encode_bytes(a) for a in self.rejected)
        )
        if self.screened:
            encoded += encode_list(encode_bytes(a) for a in self.screened)
        return encoded


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


@dataclass(frozen=True, slots=True)
class Appraisal:
    """What the validators found each contribution of a block worth."""

    values: tuple[int, ...]  # the stake-weighted median of the values reported
    harmful: tuple[bool, ...]  # reported below -forfeit_margin by more than the threshold


def compute_full_reports(
    commit: Commit, validators: ValidatorSet, length: int
) -> list[tuple[Address, tuple[int, ...], int]] | None:
    """Each (validator, values, power) of the precommits in ``commit`` that carry exactly
    ``length`` values; None unless those hold more than half of the power (too few to stand
    for the set)."""
    reports: list[tuple[Address, tuple[int, ...], int]] = [
        (sig.validator, sig.values, validator.power)
        for sig in commit.signatures
        if len(sig.values) == length
        and (validator := validators.get_validator(sig.validator)) is not None
    ]
    if 2 * sum(power for _, _, power in reports) <= validators.total_power:
        return None
    return reports


def compute_appraisal(
    commit: Commit, validators: ValidatorSet, count: int, params: ChainParams
) -> Appraisal | None:
    """The appraisal of ``count`` contributions from the precommits in ``commit`` that value all
    of them (on a chain that keeps reputation, followed by their reputation values, §3.9); None
    unless those hold more than half of the power."""
    length = 2 * count if params.keeps_reputation else count
    reports = compute_full_reports(commit, validators, length) if count else None
    if reports is None:
        return None
    values = tuple(
        compute_weighted_median([(values[i], power) for _, values, power in reports])
        for i in range(count)
    )
    harmful = tuple(
        is_quorum(
            sum(power for _, values, power in reports if values[i] < -params.forfeit_margin),
            validators.total_power,
            params.threshold,
        )
        for i in range(count)
    )
    return Appraisal(values, harmful)


def compute_reputation_reports(
    commit: Commit, validators: ValidatorSet, count: int
) -> list[tuple[Address, tuple[int, ...], int]] | None:
    """Each (validator, reputation values, power) of the precommits in ``commit`` that carry
    the reputation values of all ``count`` contributions after their settlement values (§3.9);
    None unless those hold more than half of the power."""
    reports = compute_full_reports(commit, validators, 2 * count) if count else None
    if reports is None:
        return None
    return [(address, values[count:], power) for address, values, power in reports]


def compute_proportional_split(amount: int, weights: Mapping[Address, int]) -> dict[Address, int]:
    """``amount`` split in proportion to positive ``weights``, rounded down (the rest unpaid)."""
    total = sum(weights.values())
    if amount <= 0 or total <= 0:
        return {}
    return {address: amount * weight // total for address, weight in sorted(weights.items())}


def compute_forfeits(
    deposits: Sequence[tuple[Address, int]], bonded: Mapping[Address, int]
) -> dict[Address, int]:
    """What each deposit takes from its owner's bond, in all at most what is bonded."""
    forfeits: dict[Address, int] = {}
    for address, deposit in deposits:
        left = bonded.get(address, 0) - forfeits.get(address, 0)
        if min(deposit, left) > 0:
            forfeits[address] = forfeits.get(address, 0) + min(deposit, left)
    return forfeits


def compute_settlement(
    pending: PendingShare,
    appraisal: Appraisal | None,
    bonded: Mapping[Address, int],
    params: ChainParams,
) -> Settlement:
    """Settle ``pending`` by the validators' ``appraisal`` (None: not appraised), given each
    contributor's and rejected proposer's bonded tokens."""
    deposits = [(a, params.proposal_deposit) for a in pending.rejected]
    if appraisal is None:
        each = pending.pool // len(pending.contributors) if pending.contributors else 0
        rewards = {a: each for a in pending.contributors if each}
        forfeits = compute_forfeits(deposits, bonded)
        payees = {a: 1 for a in pending.contributors if a not in pending.rejected}
    else:
        judged = list(zip(pending.judged, appraisal.values, appraisal.harmful, strict=True))
        aggregated = judged[: len(pending.contributors)]  # the screened-out ones earn nothing
        useful = {a: value for a, value, harmful in aggregated if value > 0 and not harmful}
        rewards = compute_proportional_split(pending.pool, useful)
        harmful = [(a, params.contribution_deposit) for a, _, h in judged if h]
        forfeits = compute_forfeits(harmful + deposits, bonded)
        payees = {a: v for a, v in useful.items() if a not in pending.rejected}
    forfeited = sum(forfeits.values())
    transfers = compute_proportional_split(forfeited, payees)
    return Settlement(
        {a: r for a, r in rewards.items() if r},
        forfeits,
        {a: t for a, t in transfers.items() if t},
        forfeited - sum(transfers.values()),
    )


def compute_pending_share(
    params: ChainParams,
    height: Height,
    contributors: tuple[Address, ...],
    screened: tuple[Address, ...] = (),
) -> tuple[Tokens, PendingShare | None]:
    """The proposer's part of an aggregate-mode model update's reward, and the contributors'
    part that waits for their values, with the screened-out contributions' verdicts (None
    without contributors or reward)."""
    if not contributors or (params.block_reward == 0 and not params.keeps_reputation):
        return params.block_reward, None  # a chain that keeps reputation waits for the values
    pool = params.block_reward * (100 - params.proposer_reward_percent) // 100
    return Tokens(params.block_reward - pool), PendingShare(
        height, contributors, Tokens(pool), screened=screened
    )
