"""A peer's outbox: relayed votes queued behind one another leave as one message, in order."""

from __future__ import annotations

from collections import deque

from node.peers import MAX_RELAYED_VOTES, take_next_envelope
from proto import learnchain_pb2 as pb


def batch(*heights: int) -> pb.Envelope:
    return pb.Envelope(votes=pb.VoteBatch(votes=[pb.Vote(height=h) for h in heights]))


def heights_of(envelope: pb.Envelope) -> list[int]:
    return [v.height for v in envelope.votes.votes]


def test_queued_vote_batches_are_merged_in_order() -> None:
    outbox = deque([batch(1), batch(2, 3), batch(4)])
    assert heights_of(take_next_envelope(outbox)) == [1, 2, 3, 4]
    assert not outbox


def test_other_messages_are_sent_alone_and_keep_their_place() -> None:
    proposal = pb.Envelope(proposal=pb.Proposal(height=9))
    vote = pb.Envelope(vote=pb.Vote(height=8))
    outbox = deque([proposal, batch(1), batch(2), vote, batch(3)])
    assert take_next_envelope(outbox) is proposal
    assert heights_of(take_next_envelope(outbox)) == [1, 2]
    assert take_next_envelope(outbox) is vote
    assert heights_of(take_next_envelope(outbox)) == [3]
    assert not outbox


def test_a_lone_batch_is_sent_as_it_is() -> None:
    alone = batch(1, 2)
    assert take_next_envelope(deque([alone])) is alone


def test_a_merged_batch_never_exceeds_the_limit() -> None:
    half = MAX_RELAYED_VOTES // 2
    outbox = deque([batch(*range(half)), batch(*range(half)), batch(1)])
    assert len(take_next_envelope(outbox).votes.votes) == 2 * half
    assert heights_of(take_next_envelope(outbox)) == [1]
