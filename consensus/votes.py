"""Vote tallies for one height: stake per block hash, per round and vote type."""

from __future__ import annotations

from learnchain.consensus.messages import SignedVote, Vote
from learnchain.consensus.types import Address, Hash, Round, Stake, VoteType


class RoundVotes:
    """One round's votes of one type.

    ``power_any`` counts each validator once. ``power_by_hash`` counts each (validator, block)
    pair once, so an equivocator's conflicting votes each count toward their own block: the
    recipients of a split vote then see the same polkas whatever the arrival order (CometBFT
    gets the same effect from peers' +2/3 claims). This is safe while byzantine stake is below
    1/3: two quorums above 2/3 still share an honest validator, who votes once.
    """

    __slots__ = ("by_validator", "conflicting", "power_any", "power_by_hash")

    def __init__(self) -> None:
        self.by_validator: dict[Address, SignedVote] = {}
        self.conflicting: dict[tuple[Address, Hash | None], SignedVote] = {}
        self.power_by_hash: dict[Hash | None, int] = {}
        self.power_any = 0

    def add(self, vote: SignedVote, power: Stake) -> SignedVote | None:
        """Count ``vote``; returns the earlier conflicting vote by the same validator, if any."""
        validator, block_hash = vote.vote.validator, vote.vote.block_hash
        earlier = self.by_validator.get(validator)
        if earlier is not None and (
            earlier.vote.block_hash == block_hash or (validator, block_hash) in self.conflicting
        ):
            return None  # a duplicate
        self.power_by_hash[block_hash] = self.power_by_hash.get(block_hash, 0) + power
        if earlier is None:
            self.by_validator[validator] = vote
            self.power_any += power
            return None
        self.conflicting[(validator, block_hash)] = vote
        return earlier

    def get_power_for(self, block_hash: Hash | None) -> int:
        """Stake that voted for ``block_hash`` (None: nil)."""
        return self.power_by_hash.get(block_hash, 0)

    def get_votes_for(self, block_hash: Hash) -> list[SignedVote]:
        """The votes for ``block_hash``, one per validator."""
        votes = {
            address: v
            for address, v in self.by_validator.items()
            if v.vote.block_hash == block_hash
        }
        for (address, voted), v in self.conflicting.items():
            if voted == block_hash:
                votes.setdefault(address, v)
        return list(votes.values())


class HeightVotes:
    """All prevotes and precommits of one height, by round."""

    __slots__ = ("_rounds", "_senders", "senders_power")

    def __init__(self) -> None:
        self._rounds: dict[tuple[VoteType, Round], RoundVotes] = {}
        self._senders: dict[Round, set[Address]] = {}
        self.senders_power: dict[Round, int] = {}

    def get(self, vote_type: VoteType, round_: Round) -> RoundVotes:
        """The tally for (type, round), created empty on first use."""
        key = (vote_type, round_)
        votes = self._rounds.get(key)
        if votes is None:
            votes = self._rounds[key] = RoundVotes()
        return votes

    def has_any(self) -> bool:
        """True when any vote of the height is counted."""
        return bool(self.senders_power)

    def is_counted(self, vote: Vote) -> bool:
        """True when this validator's vote for this block (or nil) in this round is counted."""
        tally = self._rounds.get((vote.vote_type, vote.round))
        if tally is None:
            return False
        earlier = tally.by_validator.get(vote.validator)
        return earlier is not None and (
            earlier.vote.block_hash == vote.block_hash
            or (vote.validator, vote.block_hash) in tally.conflicting
        )

    def add(self, vote: SignedVote, power: Stake) -> SignedVote | None:
        """Count a vote; returns an earlier conflicting vote (equivocation) if there is one."""
        v = vote.vote
        conflict = self.get(v.vote_type, v.round).add(vote, power)
        senders = self._senders.setdefault(v.round, set())
        if v.validator not in senders:
            senders.add(v.validator)
            self.senders_power[v.round] = self.senders_power.get(v.round, 0) + power
        return conflict
