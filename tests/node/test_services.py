"""The Peer and Query services over real gRPC on loopback, in front of fakes and a real store:
messages reach the component they are for, bad ones are refused and counted, queries read
committed blocks off the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest

from learnchain.consensus.crypto import PrivateKey, compute_hash
from learnchain.consensus.messages import (
    Contribution,
    DuplicateVoteEvidence,
    SignedProposal,
    SignedTx,
    SignedVote,
    TxKind,
    Vote,
)
from learnchain.consensus.state import ChainState
from learnchain.consensus.types import ChainId, Hash, Height, Round, Tokens, VoteType
from learnchain.node.p2p.peer_auth import make_fetch_request
from learnchain.node.rpc.chain_reader import ChainReader, WeightsReader
from learnchain.node.rpc.services import PeerService, QueryService, add_services
from learnchain.node.store.store import Store
from learnchain.node.store.store_worker import StoreWorker
from learnchain.node.weights.weights_parts import PART_BYTES, PartialWeights
from learnchain.proto import learnchain_pb2 as pb
from learnchain.proto import learnchain_pb2_grpc as pb_grpc
from learnchain.proto.wire import tx_from_proto, vote_to_proto
from tests.consensus.chain import CHAIN, Chain, make_genesis_state, make_keys, sign_tx

KEYS = make_keys(4)
OUTSIDER = PrivateKey.from_seed(bytes([9]) * 32)
T = TypeVar("T")
MODEL_WEIGHTS = b"a committed model's weights"
CONTRIBUTION_WEIGHTS = b"one validator's contribution"


class Inboxes:
    """Every inbox the Peer service submits to, recording what arrives."""

    def __init__(self) -> None:
        self.votes: list[SignedVote] = []

    def receive_vote(self, vote: SignedVote) -> None:
        self.votes.append(vote)

    def receive_proposal(self, proposal: SignedProposal, weights: bytes = b"") -> None:
        raise AssertionError("no proposal expected")

    def receive_evidence(self, evidence: DuplicateVoteEvidence) -> None:
        raise AssertionError("no evidence expected")

    def receive_contribution(self, contribution: Contribution, weights: bytes = b"") -> None:
        raise ValueError("contribution signature is invalid")

    def add(self, signed: SignedTx) -> Hash:
        raise ValueError("transaction signature is invalid")

    def receive_hello(self, request: pb.HelloRequest) -> pb.HelloResponse:
        return pb.HelloResponse(chain_id=CHAIN)


TRANSFER = sign_tx(KEYS[0], TxKind.TRANSFER, 0, amount=Tokens(7), recipient=KEYS[1].address)


def build_chain(store: Store, heights: int) -> tuple[ChainState, ChainState]:
    """Commit ``heights`` blocks into ``store``, the second changing the model, the third
    carrying ``TRANSFER``."""
    chain = Chain(make_genesis_state(KEYS, accounts=[(KEYS[0], 100)]), KEYS)
    genesis = chain.state
    for height in range(1, heights + 1):
        model = compute_hash(b"update") if height == 2 else None
        block = chain.next_block([TRANSFER] if height == 3 else [], model_hash=model)
        scores = {k.address: 900_000 + i for i, k in enumerate(KEYS)} if model else None
        state = chain.commit(block, scores=scores)
        assert chain.last_commit is not None
        store.save_blocks([(block, chain.last_commit)], state, [state.learning])
    return genesis, chain.state


def serve(
    tmp_path: Path,
    scenario: Callable[[grpc.aio.Channel, Inboxes, list[str]], Awaitable[T]],
    find_parts: Callable[[Hash, float], Awaitable[PartialWeights | None]] | None = None,
) -> T:
    async def run() -> T:
        store = Store(tmp_path / "chain.db")
        genesis, committed = build_chain(store, 4)
        for data in (MODEL_WEIGHTS, CONTRIBUTION_WEIGHTS):
            store.weights.put(compute_hash(data), data)
        io = StoreWorker(store)
        chain = ChainReader(io, lambda: committed, genesis, b"{}")
        weights = WeightsReader(io, lambda h: h == compute_hash(MODEL_WEIGHTS), find_parts)
        inboxes, refused = Inboxes(), list[str]()
        server = grpc.aio.server()
        add_services(
            server,
            refused.append,
            PeerService(inboxes, inboxes, inboxes, inboxes, chain, weights, refused.append),
            QueryService(chain, weights, pb.StatusResponse, refused.append),
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                return await scenario(channel, inboxes, refused)
        finally:
            await server.stop(None)
            io.close()

    return asyncio.run(run())


def test_history_reports_which_heights_changed_the_model(tmp_path: Path) -> None:
    async def scenario(channel: grpc.aio.Channel, *_: Any) -> list[tuple[int, bool]]:
        query = pb_grpc.QueryStub(channel)
        full = await query.History(pb.HistoryRequest(from_height=1))
        tail = await query.History(pb.HistoryRequest(from_height=3, limit=5))
        return [(e.height, e.model_updated) for e in [*full.entries, *tail.entries]]

    assert serve(tmp_path, scenario) == [
        (1, False),
        (2, True),
        (3, False),
        (4, False),
        (3, False),
        (4, False),
    ]


def test_history_shows_an_updates_recorded_score_and_round(tmp_path: Path) -> None:
    async def scenario(channel: grpc.aio.Channel, *_: Any) -> pb.HistoryEntry:
        query = pb_grpc.QueryStub(channel)
        history: pb.HistoryResponse = await query.History(pb.HistoryRequest(from_height=2, limit=1))
        entry: pb.HistoryEntry = history.entries[0]
        return entry

    entry = serve(tmp_path, scenario)
    assert entry.model_updated and entry.round == 0
    assert entry.HasField("score") and entry.score == 900_001, "the median of the precommits"


def test_a_committed_transaction_is_found_by_its_hash(tmp_path: Path) -> None:
    async def scenario(channel: grpc.aio.Channel, *_: Any) -> tuple[Any, ...]:
        query = pb_grpc.QueryStub(channel)
        found = await query.GetTx(pb.TxRequest(hash=TRANSFER.hash()))
        codes = []
        for unknown in (compute_hash(b"never sent"), b"short"):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await query.GetTx(pb.TxRequest(hash=unknown))
            codes.append(caught.value.code())
        return found.height, found.index, tx_from_proto(found.tx), codes

    height, index, tx, codes = serve(tmp_path, scenario)
    assert (height, index, tx) == (3, 0, TRANSFER)
    assert codes == [grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT]


def test_a_block_that_is_not_there_is_not_found(tmp_path: Path) -> None:
    async def scenario(channel: grpc.aio.Channel, *_: Any) -> grpc.StatusCode:
        query = pb_grpc.QueryStub(channel)
        assert (await query.GetBlock(pb.BlockRequest(height=2))).block.header.height == 2
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await query.GetBlock(pb.BlockRequest(height=99))
        return caught.value.code()

    assert serve(tmp_path, scenario) == grpc.StatusCode.NOT_FOUND


def test_a_gossiped_vote_reaches_the_consensus_inbox(tmp_path: Path) -> None:
    vote = Vote(CHAIN, VoteType.PREVOTE, Height(5), Round(0), None, KEYS[0].address)
    signed = SignedVote(vote, KEYS[0].sign(vote.sign_bytes()))

    async def scenario(channel: grpc.aio.Channel, inboxes: Inboxes, _: Any) -> list[SignedVote]:
        async def stream() -> Any:
            yield pb.Envelope(vote=vote_to_proto(signed))

        await pb_grpc.PeerStub(channel).Gossip(stream())
        return inboxes.votes

    assert serve(tmp_path, scenario) == [signed]


def test_a_refused_message_is_invalid_argument_and_counted(tmp_path: Path) -> None:
    async def scenario(
        channel: grpc.aio.Channel, _: Inboxes, refused: list[str]
    ) -> tuple[list[grpc.StatusCode], list[str]]:
        peer = pb_grpc.PeerStub(channel)
        codes = []
        for call in (
            peer.SubmitTx(pb.Tx()),
            peer.FetchWeights(pb.FetchWeightsRequest(weights_hash=b"short")).read(),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            codes.append(caught.value.code())
        return codes, refused

    codes, refused = serve(tmp_path, scenario)
    assert codes == [grpc.StatusCode.INVALID_ARGUMENT] * 2
    assert len(refused) == 2


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.mark.parametrize(
    ("make_request", "expected"),
    [
        (lambda h: pb.FetchWeightsRequest(weights_hash=h), grpc.StatusCode.PERMISSION_DENIED),
        (lambda h: make_fetch_request(OUTSIDER, CHAIN, h, now_ms()), "PERMISSION_DENIED"),
        (lambda h: make_fetch_request(KEYS[2], CHAIN, h, now_ms()), CONTRIBUTION_WEIGHTS),
        (lambda h: make_fetch_request(KEYS[2], CHAIN, h, now_ms() - 600_000), "INVALID_ARGUMENT"),
        (lambda h: make_fetch_request(KEYS[2], ChainId("other"), h, now_ms()), "INVALID_ARGUMENT"),
    ],
    ids=["unsigned", "not-a-validator", "validator", "stale", "other-chain"],
)
def test_a_contribution_is_served_only_to_a_validator_that_signs_the_fetch(
    tmp_path: Path, make_request: Callable[[bytes], pb.FetchWeightsRequest], expected: object
) -> None:
    async def scenario(channel: grpc.aio.Channel, *_: Any) -> object:
        peer = pb_grpc.PeerStub(channel)
        request = make_request(compute_hash(CONTRIBUTION_WEIGHTS))
        try:
            return b"".join([c.data async for c in peer.FetchWeights(request)])
        except grpc.aio.AioRpcError as error:
            return error.code().name

    if isinstance(expected, grpc.StatusCode):
        expected = expected.name
    assert serve(tmp_path, scenario) == expected


def test_a_committed_model_is_served_to_anyone_and_a_contribution_never_by_query(
    tmp_path: Path,
) -> None:
    async def scenario(channel: grpc.aio.Channel, *_: Any) -> tuple[bytes, bytes, str]:
        peer, query = pb_grpc.PeerStub(channel), pb_grpc.QueryStub(channel)
        model = pb.FetchWeightsRequest(weights_hash=compute_hash(MODEL_WEIGHTS))
        by_peer = b"".join([c.data async for c in peer.FetchWeights(model)])
        by_query = b"".join([c.data async for c in query.Model(model)])
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            request = pb.FetchWeightsRequest(weights_hash=compute_hash(CONTRIBUTION_WEIGHTS))
            [c async for c in query.Model(request)]
        return by_peer, by_query, caught.value.code().name

    assert serve(tmp_path, scenario) == (MODEL_WEIGHTS, MODEL_WEIGHTS, "NOT_FOUND")


def test_blocks_are_served_only_to_a_node_of_the_same_chain(tmp_path: Path) -> None:
    async def scenario(channel: grpc.aio.Channel, *_: Any) -> tuple[int, grpc.StatusCode]:
        peer = pb_grpc.PeerStub(channel)
        ours = [b async for b in peer.GetBlocks(pb.GetBlocksRequest(chain_id=CHAIN, from_height=1))]
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            request = pb.GetBlocksRequest(chain_id="another-chain", from_height=1)
            [b async for b in peer.GetBlocks(request)]
        return sum(len(b.blocks) for b in ours), caught.value.code()

    assert serve(tmp_path, scenario) == (4, grpc.StatusCode.INVALID_ARGUMENT)


def test_queries_read_the_store_off_the_event_loop(tmp_path: Path) -> None:
    threads: list[str] = []

    async def scenario() -> None:
        store = Store(tmp_path / "chain.db")
        genesis, committed = build_chain(store, 2)
        original = store.get_block

        def get_block(height: int) -> Any:
            threads.append(threading.current_thread().name)
            return original(height)

        store.get_block = get_block  # type: ignore[method-assign]
        io = StoreWorker(store)
        chain = ChainReader(io, lambda: committed, genesis, b"{}")
        assert [b.header.height for b in await chain.read_blocks(1, 3)] == [1, 2]
        io.close()

    asyncio.run(scenario())
    assert threads and all(name.startswith("store-reads") for name in threads)


def test_a_stripe_is_served_part_by_part_as_the_parts_arrive(tmp_path: Path) -> None:
    model = compute_hash(MODEL_WEIGHTS)
    arriving = PartialWeights(3 * PART_BYTES, tmp_path / "arriving.safetensors")
    part = bytes([7]) * PART_BYTES

    async def find_parts(weights_hash: Hash, wait: float) -> PartialWeights | None:
        return arriving if weights_hash == model else None

    async def scenario(channel: grpc.aio.Channel, *_: Any) -> tuple[Any, ...]:
        peer = pb_grpc.PeerStub(channel)
        request = pb.FetchWeightsRequest(weights_hash=model, stripe=1, stripes=2)
        stream = peer.FetchWeights(request)
        asyncio.get_running_loop().call_later(0.2, arriving.put, 1, part)
        chunks = [(c.part, c.total_size, c.data == part) async for c in stream]
        codes = []
        unknown = make_fetch_request(KEYS[2], CHAIN, compute_hash(b"unknown"), now_ms())
        unknown.stripe, unknown.stripes = 0, 2
        for bad in (pb.FetchWeightsRequest(weights_hash=model, stripe=2, stripes=2), unknown):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                [c async for c in peer.FetchWeights(bad)]
            codes.append(caught.value.code().name)
        return chunks, codes

    chunks, codes = serve(tmp_path, scenario, find_parts)
    assert chunks == [(1, 3 * PART_BYTES, True)]
    assert codes == ["INVALID_ARGUMENT", "NOT_FOUND"]
