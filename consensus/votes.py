"""Vote tallies for one height: stake per block hash, per round and vote type."""

from __future__ import annotations

from consensus.messages import SignedVote
from consensus.types import Address, Hash, Round, Stake, VoteType


class RoundVotes:
    """One round's votes of one type, at most one counted per validator."""

    __slots__ = ("by_validator", "power_any", "power_by_hash")

    def __init__(self) -> None:
        self.by_validator: dict[Address, SignedVote] = {}
        self.power_by_hash: dict[Hash | None, int] = {}
        self.power_any = 0

    def add(self, vote: SignedVote, power: Stake) -> SignedVote | None:
        """Count ``vote``; returns the earlier conflicting vote by the same validator, if any."""
        earlier = self.by_validator.get(vote.vote.validator)
        if earlier is not None:
            return earlier if earlier.vote.block_hash != vote.vote.block_hash else None
        self.by_validator[vote.vote.validator] = vote
        block_hash = vote.vote.block_hash
        self.power_by_hash[block_hash] = self.power_by_hash.get(block_hash, 0) + power
        self.power_any += power
        return None

    def get_power_for(self, block_hash: Hash | None) -> int:
        """Stake that voted for ``block_hash`` (None: nil)."""
        return self.power_by_hash.get(block_hash, 0)

    def get_votes_for(self, block_hash: Hash) -> list[SignedVote]:
        """The votes for ``block_hash``."""
        return [v for v in self.by_validator.values() if v.vote.block_hash == block_hash]


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

    def add(self, vote: SignedVote, power: Stake) -> SignedVote | None:
        """Count a vote; returns an earlier conflicting vote (equivocation) if there is one."""
        v = vote.vote
        conflict = self.get(v.vote_type, v.round).add(vote, power)
        senders = self._senders.setdefault(v.round, set())
        if v.validator not in senders:
            senders.add(v.validator)
            self.senders_power[v.round] = self.senders_power.get(v.round, 0) + power
        return conflict
