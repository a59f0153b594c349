"""A peer's outgoing gossip: relayed votes queued behind one another leave as one message, in
order; a peer that comes up is dialled again at once."""

from __future__ import annotations

import asyncio
from collections import deque
from pathlib import Path

import grpc
import pytest

from learnchain.node.home.testnet import find_free_base_port
from learnchain.node.p2p import peers
from learnchain.node.p2p.peers import MAX_RELAYED_VOTES, take_next_envelope
from learnchain.proto import learnchain_pb2 as pb
from learnchain.proto import learnchain_pb2_grpc as pb_grpc


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


class Inbox(pb_grpc.PeerServicer):  # type: ignore[misc]
    """A peer that only records the gossip it receives."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[pb.Envelope] = asyncio.Queue()

    async def Gossip(self, requests, context):  # type: ignore[no-untyped-def]
        async for envelope in requests:
            self.received.put_nowait(envelope)
        return pb.Ack()


def test_a_peer_that_says_hello_is_redialed_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without the redial, a stream that found the peer down waits 30 s before it tries again.
    monkeypatch.setattr(peers, "STREAM_RETRY_SECONDS", (30.0, 30.0))
    port = find_free_base_port(1, start=41000, step=13)

    async def scenario() -> None:
        peer = peers.Peer(f"127.0.0.1:{port}")
        peer.gossip(batch(7))
        while not peer._unreachable:  # the first attempt fails: nobody listens yet
            await asyncio.sleep(0.01)
        server = grpc.aio.server()
        inbox = Inbox()
        pb_grpc.add_PeerServicer_to_server(inbox, server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        try:
            peer.gossip(batch(8))  # (7 went down with the failed stream, as on a lossy link)
            peer.redial()  # what its Hello triggers
            received = await asyncio.wait_for(inbox.received.get(), timeout=10)
            assert heights_of(received)[-1] == 8
        finally:
            await peer.close()
            await server.stop(None)

    asyncio.run(scenario())


class HungWeights(pb_grpc.PeerServicer):  # type: ignore[misc]
    """A peer that accepts a weights fetch and then sends nothing (a paused process)."""

    async def FetchWeights(self, request, context):  # type: ignore[no-untyped-def]
        await asyncio.Event().wait()
        yield pb.WeightsChunk()


def test_a_peer_that_stalls_a_weights_fetch_is_given_up_and_marked_unreachable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(peers, "FETCH_STALL_SECONDS", 0.3)

    async def scenario() -> tuple[object, bool]:
        server = grpc.aio.server()
        pb_grpc.add_PeerServicer_to_server(HungWeights(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        peer = peers.Peer(f"127.0.0.1:{port}")
        peer.connected = True
        try:
            into = tmp_path / "fetched.safetensors"
            fetched = await asyncio.wait_for(peer.fetch_weights(bytes(32), 1 << 20, into), 10)
            return fetched, peer.connected
        finally:
            await peer.close()
            await server.stop(None)

    assert asyncio.run(scenario()) == (False, False)
