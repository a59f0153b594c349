"""Vote tallies: one vote per validator for 'any', one per (validator, block) for a block."""

from __future__ import annotations

from learnchain.consensus.crypto import compute_hash
from learnchain.consensus.messages import SignedVote, Vote
from learnchain.consensus.types import Height, Round, Signature, Stake, VoteType
from learnchain.consensus.votes import RoundVotes
from tests.consensus.chain import CHAIN, make_keys

A, B = compute_hash(b"a"), compute_hash(b"b")
KEYS = make_keys(3)


def vote(i: int, block_hash: bytes | None) -> SignedVote:
    v = Vote(CHAIN, VoteType.PREVOTE, Height(1), Round(0), block_hash, KEYS[i].address)  # type: ignore[arg-type]
    return SignedVote(v, Signature(KEYS[i].sign(v.sign_bytes())))


def test_a_duplicate_vote_counts_once() -> None:
    tally = RoundVotes()
    assert tally.add(vote(0, A), Stake(10)) is None
    assert tally.add(vote(0, A), Stake(10)) is None
    assert tally.power_any == 10 and tally.get_power_for(A) == 10


def test_an_equivocator_counts_once_for_any_and_once_for_each_block() -> None:
    tally = RoundVotes()
    tally.add(vote(0, A), Stake(10))
    conflict = tally.add(vote(0, None), Stake(10))
    assert conflict is not None and conflict.vote.block_hash == A
    assert tally.add(vote(0, None), Stake(10)) is None  # the same conflicting vote again
    assert tally.power_any == 10
    assert tally.get_power_for(A) == 10 and tally.get_power_for(None) == 10
    tally.add(vote(1, A), Stake(5))
    assert {v.vote.validator for v in tally.get_votes_for(A)} == {KEYS[0].address, KEYS[1].address}
    assert tally.get_votes_for(B) == []
