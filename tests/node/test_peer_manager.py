"""Peer management dials the validators the chain lists (never itself) and adds a node that
says a well-formed Hello for this chain; anything else is refused and adds nobody."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from consensus.types import Address, ChainId, Height
from node.peer_manager import HelloError, PeerManager
from node.peers import PeerSet
from proto import learnchain_pb2 as pb
from tests.consensus.chain import CHAIN, make_genesis_state, make_keys

KEYS = make_keys(3)
OWN = KEYS[0].address
OWN_ENDPOINT = "127.0.0.1:26000"  # make_genesis_state gives validator i 127.0.0.1:26000+i


def with_manager(check: Callable[[PeerManager], None]) -> None:
    async def scenario() -> None:
        manager = PeerManager(
            PeerSet([]), CHAIN, OWN, (OWN_ENDPOINT,), OWN_ENDPOINT, lambda: Height(7)
        )
        try:
            check(manager)
        finally:
            await manager.close()

    asyncio.run(scenario())


def addresses(manager: PeerManager) -> list[str]:
    return [peer.address for peer in manager.peers.peers]


def test_every_other_validator_in_the_state_is_dialled() -> None:
    def check(manager: PeerManager) -> None:
        manager.add_validator_peers(make_genesis_state(KEYS))
        assert addresses(manager) == ["127.0.0.1:26001", "127.0.0.1:26002"]

    with_manager(check)


def test_a_hello_adds_the_node_and_answers_with_our_height() -> None:
    def check(manager: PeerManager) -> None:
        request = pb.HelloRequest(chain_id=CHAIN, node_id=bytes(20), endpoint="10.1.2.3:26656")
        response = manager.receive_hello(request)
        assert (response.chain_id, response.node_id, response.height) == (CHAIN, OWN, 7)
        assert addresses(manager) == ["10.1.2.3:26656"]
        manager.receive_hello(request)
        assert addresses(manager) == ["10.1.2.3:26656"]

    with_manager(check)


def test_a_hello_from_ourselves_adds_nobody() -> None:
    def check(manager: PeerManager) -> None:
        manager.receive_hello(pb.HelloRequest(chain_id=CHAIN, node_id=OWN, endpoint="h:1"))
        manager.receive_hello(
            pb.HelloRequest(chain_id=CHAIN, node_id=bytes(20), endpoint=OWN_ENDPOINT)
        )
        assert addresses(manager) == []

    with_manager(check)


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        (pb.HelloRequest(chain_id=ChainId("other"), node_id=bytes(20), endpoint="h:1"), "chain"),
        (pb.HelloRequest(chain_id=CHAIN, node_id=bytes(19), endpoint="h:1"), "node_id"),
        (pb.HelloRequest(chain_id=CHAIN, node_id=bytes(20), endpoint=""), "endpoint"),
        (pb.HelloRequest(chain_id=CHAIN, node_id=bytes(20), endpoint="h" * 300), "endpoint"),
        (pb.HelloRequest(chain_id=CHAIN, node_id=bytes(20), endpoint="no-port"), "host:port"),
        (pb.HelloRequest(chain_id=CHAIN, node_id=bytes(20), endpoint="h:70000"), "host:port"),
    ],
)
def test_a_bad_hello_is_refused_and_adds_nobody(request_: pb.HelloRequest, error: str) -> None:
    def check(manager: PeerManager) -> None:
        with pytest.raises(HelloError, match=error):
            manager.receive_hello(request_)
        assert addresses(manager) == []

    with_manager(check)


def test_gossip_to_a_validator_that_is_not_our_peer_says_so() -> None:
    def check(manager: PeerManager) -> None:
        state = make_genesis_state(KEYS)
        envelope = pb.Envelope()
        assert not manager.gossip_to_validator(state.validators, KEYS[1].address, envelope)
        manager.add_validator_peers(state)
        assert manager.gossip_to_validator(state.validators, KEYS[1].address, envelope)
        assert not manager.gossip_to_validator(state.validators, Address(bytes(20)), envelope)

    with_manager(check)
