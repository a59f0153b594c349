"""Peer management dials the validators the chain lists (never itself) and adds a node that says
a Hello signed by its node key once the endpoint it names answers a dial-back with that key;
anything else is refused or adds nobody, and dial-backs in flight are bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from learnchain.consensus.crypto import PrivateKey, compute_hash
from learnchain.consensus.messages import Contribution
from learnchain.consensus.types import Address, ChainId, Height, Signature
from learnchain.node.home.testnet import find_free_base_port
from learnchain.node.p2p import peer_manager
from learnchain.node.p2p.peer_auth import is_valid_answer, make_answer, make_hello
from learnchain.node.p2p.peer_manager import HelloError, PeerManager
from learnchain.node.p2p.peers import PeerKind, PeerSet
from learnchain.node.store.weights_store import EncodedWeights
from learnchain.proto import learnchain_pb2 as pb
from learnchain.proto import learnchain_pb2_grpc as pb_grpc
from tests.consensus.chain import CHAIN, make_genesis_state, make_keys

KEYS = make_keys(3)
NEWCOMER = PrivateKey.from_seed(bytes([42]) * 32)
OWN = KEYS[0].address
OWN_ENDPOINT = "127.0.0.1:26000"  # make_genesis_state gives validator i 127.0.0.1:26000+i


def run_with_manager(scenario: Callable[[PeerManager], Awaitable[None]]) -> None:
    async def run() -> None:
        manager = PeerManager(
            PeerSet([]), CHAIN, KEYS[0], (OWN_ENDPOINT,), OWN_ENDPOINT, lambda: Height(7)
        )
        try:
            await scenario(manager)
        finally:
            await manager.close()

    asyncio.run(run())


def with_manager(check: Callable[[PeerManager], None]) -> None:
    async def scenario(manager: PeerManager) -> None:
        check(manager)

    run_with_manager(scenario)


def addresses(manager: PeerManager) -> list[str]:
    return [peer.address for peer in manager.peers.peers]


def test_every_other_validator_in_the_state_is_dialled() -> None:
    def check(manager: PeerManager) -> None:
        manager.add_validator_peers(make_genesis_state(KEYS))
        assert addresses(manager) == ["127.0.0.1:26001", "127.0.0.1:26002"]

    with_manager(check)


class HelloServer(pb_grpc.PeerServicer):  # type: ignore[misc]
    """A node that answers Hellos with ``key`` (a dial-back reaches it)."""

    def __init__(self, key: PrivateKey) -> None:
        self.key = key

    async def Hello(self, request: pb.HelloRequest, context: object) -> pb.HelloResponse:
        return make_answer(self.key, CHAIN, request, 3)


async def serve_hello(key: PrivateKey) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    pb_grpc.add_PeerServicer_to_server(HelloServer(key), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def settle(manager: PeerManager) -> None:
    """Wait for the dial-backs in flight."""
    await asyncio.gather(*manager._dial_backs.values(), return_exceptions=True)


def test_a_signed_hello_is_answered_and_its_node_added_once_the_dial_back_checks() -> None:
    async def scenario(manager: PeerManager) -> None:
        server, endpoint = await serve_hello(NEWCOMER)
        try:
            hello = make_hello(NEWCOMER, CHAIN, endpoint)
            answer = manager.receive_hello(hello)
            assert (answer.chain_id, answer.node_id, answer.height) == (CHAIN, OWN, 7)
            assert is_valid_answer(answer, CHAIN, hello.nonce, OWN)
            await settle(manager)
            assert addresses(manager) == [endpoint]
            manager.receive_hello(make_hello(NEWCOMER, CHAIN, endpoint))
            await settle(manager)
            assert addresses(manager) == [endpoint]
        finally:
            await server.stop(None)

    run_with_manager(scenario)


def test_an_endpoint_that_answers_with_another_key_is_not_added_and_refused_for_a_while() -> None:
    async def scenario(manager: PeerManager) -> None:
        server, endpoint = await serve_hello(KEYS[2])  # someone else listens there
        try:
            manager.receive_hello(make_hello(NEWCOMER, CHAIN, endpoint))
            await settle(manager)
            assert addresses(manager) == []
            with pytest.raises(HelloError, match="try again later"):
                manager.receive_hello(make_hello(NEWCOMER, CHAIN, endpoint))
        finally:
            await server.stop(None)

    run_with_manager(scenario)


def test_a_hello_naming_a_dead_endpoint_adds_nobody() -> None:
    async def scenario(manager: PeerManager) -> None:
        dead = f"127.0.0.1:{find_free_base_port(1, start=42000, step=17)}"
        manager.receive_hello(make_hello(NEWCOMER, CHAIN, dead))
        await settle(manager)
        assert addresses(manager) == []

    run_with_manager(scenario)


def test_dial_backs_in_flight_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    never = asyncio.Event()

    async def hang(address: str, request: pb.HelloRequest) -> None:
        await never.wait()

    monkeypatch.setattr(peer_manager, "dial_hello", hang)

    async def scenario(manager: PeerManager) -> None:
        for i in range(peer_manager.MAX_DIAL_BACKS):
            manager.receive_hello(make_hello(NEWCOMER, CHAIN, f"10.0.0.{i}:1"))
        with pytest.raises(HelloError, match="too many"):
            manager.receive_hello(make_hello(NEWCOMER, CHAIN, "10.0.1.1:1"))
        assert addresses(manager) == []

    run_with_manager(scenario)


def test_a_hello_from_ourselves_or_for_our_address_adds_nobody() -> None:
    async def scenario(manager: PeerManager) -> None:
        manager.receive_hello(make_hello(KEYS[0], CHAIN, "127.0.0.1:1"))
        manager.receive_hello(make_hello(NEWCOMER, CHAIN, OWN_ENDPOINT))
        assert manager._dial_backs == {}
        assert addresses(manager) == []

    run_with_manager(scenario)


def tampered(**changes: object) -> pb.HelloRequest:
    hello = make_hello(NEWCOMER, CHAIN, "h:1")
    for name, value in changes.items():
        setattr(hello, name, value)
    return hello


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        (make_hello(NEWCOMER, ChainId("other"), "h:1"), "chain"),
        (tampered(node_id=bytes(19)), "node_id"),
        (tampered(node_id=KEYS[1].address), "node_id is not the address"),
        (tampered(public_key=b"x" * 32), "public_key"),
        (tampered(nonce=b""), "nonce"),
        (tampered(endpoint="h:2"), "bad signature"),
        (tampered(signature=bytes(64)), "bad signature"),
        (make_hello(NEWCOMER, CHAIN, "h" * 300), "endpoint"),
        (make_hello(NEWCOMER, CHAIN, "no-port"), "host:port"),
        (make_hello(NEWCOMER, CHAIN, "h:70000"), "host:port"),
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


def test_a_contribution_goes_to_the_validators_alone(tmp_path: Path) -> None:
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"w")

    def check(manager: PeerManager) -> None:
        manager.add_validator_peers(make_genesis_state(KEYS))
        manager.peers.add("10.0.0.9:1", PeerKind.ANNOUNCED)  # a full node
        contribution = Contribution(
            CHAIN, Height(0), OWN, compute_hash(b"w"), 10, Signature(bytes(64))
        )
        manager.announce_contribution(contribution, EncodedWeights(compute_hash(b"w"), weights))
        queued = {peer.address: peer.outbox_bytes > 0 for peer in manager.peers.peers}
        assert queued == {"127.0.0.1:26001": True, "127.0.0.1:26002": True, "10.0.0.9:1": False}

    with_manager(check)
