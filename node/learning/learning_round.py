"""When an aggregate-mode learning round is ready to be proposed (docs/protocol.md §3.2).

A round begins when its model is committed. The proposer aggregates at once when every
awaited contributor is in (those who contributed to the last model, and itself). When some are
missing (crashed, or slower), it waits until contributions from more than the threshold of stake
are in, plus 15 % of the time that took, so a round lasts at most 1.15 times what the quorum
needed, not what the slowest party needs. If no quorum ever comes, it aggregates what it has at
the genesis ``round_deadline``. None of this decides validity: any set of valid contributions
makes a valid block, and the validators vote on the aggregate.
"""

from __future__ import annotations

from dataclasses import dataclass

from learnchain.consensus.types import Address, Height, Threshold
from learnchain.consensus.validators import ValidatorSet

GRACE = 0.15  # after a quorum arrived, wait this share of the time it took for the rest


@dataclass(frozen=True)
class Contributors:
    """Who contributed to a round's model, whom the round awaits, and whether the
    contributors hold more than the threshold of the validators' stake."""

    arrived: frozenset[Address]
    awaited: frozenset[Address]
    quorum: bool

    @staticmethod
    def of(
        arrived: set[Address], awaited: set[Address], validators: ValidatorSet, threshold: Threshold
    ) -> Contributors:
        """The contributors, with the quorum computed from the validators' powers."""
        quorum = validators.is_quorum_of(arrived, threshold)
        return Contributors(frozenset(arrived), frozenset(awaited), quorum)

    def is_complete(self) -> bool:
        """True when every awaited contributor is in."""
        return self.awaited <= self.arrived


@dataclass
class LearningRound:
    """One model's round of contributions, timed on this node's monotonic clock (seconds)."""

    model_height: Height
    started: float
    deadline: float
    quorum_at: float | None = None

    def is_past_deadline(self, now: float) -> bool:
        """True once ``round_deadline`` has passed since the model was committed."""
        return now >= self.started + self.deadline

    def is_ready(self, contributors: Contributors, now: float) -> bool:
        """True when the proposer should aggregate now (see the module's rule)."""
        if not contributors.arrived:
            return False
        if contributors.is_complete():
            return True
        if self.quorum_at is None and contributors.quorum:
            self.quorum_at = now
        if self.quorum_at is not None and now >= self.get_grace_end():
            return True
        return self.is_past_deadline(now)

    def may_aggregate(self, contributors: Contributors, now: float) -> bool:
        """True when a proposal asked for now (a transaction woke the chain, or empty blocks
        are on) should carry an aggregate rather than keep the model."""
        return bool(contributors.arrived) and (
            contributors.is_complete() or contributors.quorum or self.is_past_deadline(now)
        )

    def get_grace_end(self) -> float:
        """When the grace after the quorum ends (the quorum must have arrived)."""
        assert self.quorum_at is not None
        return self.quorum_at + GRACE * (self.quorum_at - self.started)

    def get_next_check(self, now: float) -> float:
        """Seconds until readiness may change with no new contribution (grace or deadline)."""
        ends = [self.started + self.deadline]
        if self.quorum_at is not None:
            ends.append(self.get_grace_end())
        pending = [end for end in ends if end > now]
        return min(pending) - now if pending else 0.0
