"""The peer table is bounded where strangers can fill it: announced peers are capped, evicted when
unreachable, and make room for newcomers; validators and configured peers are never evicted; the
gossip queued for one peer is bounded in bytes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from learnchain.node.p2p import peers
from learnchain.node.p2p.peers import (
    EVICT_UNREACHABLE_SECONDS,
    MAX_OUTBOX_BYTES,
    Peer,
    PeerKind,
    PeerSet,
)
from learnchain.proto import learnchain_pb2 as pb


def with_peer_set(check: Callable[[PeerSet], None], configured: list[str] | None = None) -> None:
    async def scenario() -> None:
        peer_set = PeerSet(configured or [])
        try:
            check(peer_set)
        finally:
            await peer_set.close()

    asyncio.run(scenario())


def announced(peer_set: PeerSet) -> list[Peer]:
    return [p for p in peer_set.peers if p.kind is PeerKind.ANNOUNCED]


def test_a_newcomer_takes_the_place_of_the_announced_peer_unreachable_the_longest() -> None:
    def check(peer_set: PeerSet) -> None:
        for i in range(peers.MAX_ANNOUNCED_PEERS):
            assert peer_set.add(f"10.0.0.{i}:1", PeerKind.ANNOUNCED)
        for i, peer in enumerate(announced(peer_set)):
            peer.connected = i != 5
            peer.last_seen = 1000.0 + i
        assert peer_set.add("10.9.9.9:1", PeerKind.ANNOUNCED)
        assert peer_set.find("10.0.0.5:1") is None
        assert len(announced(peer_set)) == peers.MAX_ANNOUNCED_PEERS

    with_peer_set(check)


def test_no_announced_newcomer_while_every_announced_peer_is_connected() -> None:
    def check(peer_set: PeerSet) -> None:
        for i in range(peers.MAX_ANNOUNCED_PEERS):
            peer_set.add(f"10.0.0.{i}:1", PeerKind.ANNOUNCED)
        for peer in peer_set.peers:
            peer.connected = True
        assert not peer_set.add("10.9.9.9:1", PeerKind.ANNOUNCED)
        assert peer_set.add("10.8.8.8:1", PeerKind.VALIDATOR)  # validators are not capped

    with_peer_set(check)


def test_only_announced_peers_unreachable_for_long_are_evicted() -> None:
    def check(peer_set: PeerSet) -> None:
        peer_set.add("10.0.0.1:1", PeerKind.VALIDATOR)
        peer_set.add("10.0.0.2:1", PeerKind.ANNOUNCED)
        peer_set.add("10.0.0.3:1", PeerKind.ANNOUNCED)
        for peer in peer_set.peers:
            peer.connected, peer.last_seen = False, 0.0
        peer_set.find("10.0.0.3:1").last_seen = 50.0  # type: ignore[union-attr]
        assert peer_set.evict_unreachable(now=EVICT_UNREACHABLE_SECONDS + 10) == 1
        assert [p.address for p in peer_set.peers] == ["configured:1", "10.0.0.1:1", "10.0.0.3:1"]

    with_peer_set(check, configured=["configured:1"])


def test_an_announced_node_that_becomes_a_validator_is_never_evicted() -> None:
    def check(peer_set: PeerSet) -> None:
        peer_set.add("10.0.0.1:1", PeerKind.ANNOUNCED)
        peer_set.add("10.0.0.1:1", PeerKind.VALIDATOR)
        peer = peer_set.peers[0]
        peer.connected, peer.last_seen = False, 0.0
        assert peer_set.evict_unreachable(now=10 * EVICT_UNREACHABLE_SECONDS) == 0

    with_peer_set(check)


def test_gossip_queued_for_a_peer_is_bounded_in_bytes() -> None:
    async def scenario() -> tuple[int, int]:
        peer = Peer("127.0.0.1:9")  # nobody listens: everything stays queued
        weights = bytes(1 << 20)
        for height in range(100):
            peer.gossip(pb.Envelope(proposal=pb.Proposal(height=height), weights=weights))
        queued, dropped = peer.outbox_bytes, peer.dropped
        await peer.close()
        return queued, dropped

    queued, dropped = asyncio.run(scenario())
    assert queued <= MAX_OUTBOX_BYTES
    assert dropped >= 100 - MAX_OUTBOX_BYTES // (1 << 20)
