"""The gRPC services a node serves: Peer (between validators) and Query (CLI and tools).

Each service depends on small protocols (what it submits, what it reads), not on the node.
Every request is size-limited by the server options and decoded through ``node.wire``; a bad
message is refused with INVALID_ARGUMENT, counted, and changes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

import grpc

from learnchain.consensus.messages import (
    Contribution,
    DuplicateVoteEvidence,
    SignedProposal,
    SignedTx,
    SignedVote,
)
from learnchain.consensus.types import ADDRESS_LENGTH, HASH_LENGTH, Address, Hash
from learnchain.node.p2p.peer_auth import FetchRefused, compute_now_ms, get_fetch_signer
from learnchain.node.p2p.peers import INLINE_WEIGHTS_BYTES, MAX_RELAYED_VOTES, WeightsCounter
from learnchain.node.rpc.chain_reader import ChainReader, WeightsReader
from learnchain.node.weights.weights_parts import MAX_STRIPES, PART_WAIT_SECONDS, iter_stripe
from learnchain.proto import learnchain_pb2 as pb
from learnchain.proto import learnchain_pb2_grpc as pb_grpc
from learnchain.proto.wire import (
    WireError,
    bond_to_proto,
    contribution_from_proto,
    evidence_from_proto,
    proposal_from_proto,
    tx_from_proto,
    tx_to_proto,
    validator_set_to_proto,
    vote_from_proto,
)

MAX_BLOCKS_PER_REQUEST = 100_000
BLOCK_BATCH_BLOCKS = 64  # blocks per GetBlocks message
BLOCK_BATCH_BYTES = 1024 * 1024  # bytes per GetBlocks message (a larger single block goes alone)
DEFAULT_HISTORY_ENTRIES = 100
MAX_HISTORY_ENTRIES = 10_000


class ConsensusInbox(Protocol):
    """Where consensus messages from peers go (the consensus driver)."""

    def receive_vote(self, vote: SignedVote) -> None: ...
    def receive_proposal(self, proposal: SignedProposal, weights: bytes = b"") -> None: ...
    def receive_evidence(self, evidence: DuplicateVoteEvidence) -> None: ...


class ContributionInbox(Protocol):
    """Where contributions from peers go (the learning application)."""

    def receive_contribution(self, contribution: Contribution, weights: bytes = b"") -> None: ...


class TxInbox(Protocol):
    """Where transactions go (the mempool)."""

    def add(self, signed: SignedTx) -> Hash: ...


class HelloInbox(Protocol):
    """Where Hellos go (peer management)."""

    def receive_hello(self, request: pb.HelloRequest) -> pb.HelloResponse: ...


Refusals = Callable[[str], None]
"""Counts a refused request by the error's kind."""


async def _refuse(refusals: Refusals, context: grpc.aio.ServicerContext, error: Exception) -> None:
    refusals(type(error).__name__)
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))


PRIVATE_WEIGHTS = "only a validator may fetch weights that are not a committed or proposed model"


async def _stream_weights(
    chain: WeightsReader, weights_hash: Hash, context: grpc.aio.ServicerContext, missing: str
) -> AsyncIterator[pb.WeightsChunk]:
    size = await chain.read_weights_size(weights_hash)
    if size is None:
        await context.abort(grpc.StatusCode.NOT_FOUND, missing)
    first = True
    async for chunk in chain.iter_weights(weights_hash):
        yield pb.WeightsChunk(data=chunk, total_size=size if first else 0)
        first = False


class PeerService(pb_grpc.PeerServicer):  # type: ignore[misc]
    """Consensus messages, weights, catch-up and transactions."""

    def __init__(
        self,
        consensus: ConsensusInbox,
        contributions: ContributionInbox,
        txs: TxInbox,
        hellos: HelloInbox,
        chain: ChainReader,
        weights: WeightsReader,
        refusals: Refusals,
    ) -> None:
        self.consensus = consensus
        self.contributions = contributions
        self.txs = txs
        self.hellos = hellos
        self.chain = chain
        self.weights = weights
        self.refusals = refusals
        self.inbound_streams = 0  # peers' Gossip streams open to this node
        self.count_weights_bytes: WeightsCounter = lambda _direction, _size: None

    async def Hello(
        self, request: pb.HelloRequest, context: grpc.aio.ServicerContext
    ) -> pb.HelloResponse:
        try:
            return self.hellos.receive_hello(request)
        except ValueError as error:
            await _refuse(self.refusals, context, error)
            return pb.HelloResponse()

    async def Gossip(
        self, requests: AsyncIterator[pb.Envelope | Malformed], context: grpc.aio.ServicerContext
    ) -> pb.Ack:
        """A peer's stream of consensus messages; the first bad one ends the stream."""
        self.inbound_streams += 1
        try:
            async for envelope in requests:
                try:
                    if isinstance(envelope, Malformed):
                        raise WireError(f"malformed message: {envelope.error}")
                    self._dispatch(envelope)
                except (WireError, ValueError) as error:
                    await _refuse(self.refusals, context, error)
        finally:
            self.inbound_streams -= 1
        return pb.Ack()

    def _dispatch(self, envelope: pb.Envelope) -> None:
        kind = envelope.WhichOneof("body")
        if envelope.weights and kind not in ("proposal", "contribution"):
            raise WireError("weights travel only beside a proposal or a contribution")
        if len(envelope.weights) > INLINE_WEIGHTS_BYTES:
            raise WireError(f"inline weights over {INLINE_WEIGHTS_BYTES} bytes")
        if envelope.weights:
            self.count_weights_bytes("received", len(envelope.weights))
        if kind == "vote":
            self.consensus.receive_vote(vote_from_proto(envelope.vote))
        elif kind == "votes":
            if not 0 < len(envelope.votes.votes) <= MAX_RELAYED_VOTES:
                raise WireError(f"a vote batch holds 1 to {MAX_RELAYED_VOTES} votes")
            for vote in [vote_from_proto(v) for v in envelope.votes.votes]:
                self.consensus.receive_vote(vote)
        elif kind == "proposal":
            self.consensus.receive_proposal(
                proposal_from_proto(envelope.proposal), envelope.weights
            )
        elif kind == "evidence":
            self.consensus.receive_evidence(evidence_from_proto(envelope.evidence))
        elif kind == "contribution":
            self.contributions.receive_contribution(
                contribution_from_proto(envelope.contribution.contribution), envelope.weights
            )
        else:
            raise WireError("empty envelope")

    async def SubmitTx(self, request: pb.Tx, context: grpc.aio.ServicerContext) -> pb.TxAck:
        try:
            tx_hash = self.txs.add(tx_from_proto(request))
        except (WireError, ValueError) as error:
            await _refuse(self.refusals, context, error)
            return pb.TxAck()
        return pb.TxAck(tx_hash=tx_hash)

    async def FetchWeights(
        self, request: pb.FetchWeightsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WeightsChunk]:
        if len(request.weights_hash) != HASH_LENGTH:
            await _refuse(
                self.refusals, context, WireError(f"weights hash must be {HASH_LENGTH} bytes")
            )
        weights_hash = Hash(request.weights_hash)
        if not self.weights.is_public(weights_hash):
            await self._check_validator(request, context)
        if request.stripes:
            async for chunk in self._stream_stripe(request, weights_hash, context):
                self.count_weights_bytes("sent", len(chunk.data))
                yield chunk
            return
        async for chunk in _stream_weights(self.weights, weights_hash, context, "no such weights"):
            self.count_weights_bytes("sent", len(chunk.data))
            yield chunk

    async def _stream_stripe(
        self,
        request: pb.FetchWeightsRequest,
        weights_hash: Hash,
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.WeightsChunk]:
        """One stripe's parts, each as soon as this node has it (node/weights/weights_parts.py)."""
        if request.stripes > MAX_STRIPES or request.stripe >= request.stripes:
            await _refuse(
                self.refusals,
                context,
                WireError(f"stripe {request.stripe} of {request.stripes} (at most {MAX_STRIPES})"),
            )
        partial = await self.weights.find_parts(weights_hash, PART_WAIT_SECONDS)
        if partial is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such weights")
            return
        async for part, data in iter_stripe(partial, request.stripe, request.stripes):
            yield pb.WeightsChunk(data=data, total_size=partial.size, part=part)

    async def _check_validator(
        self, request: pb.FetchWeightsRequest, context: grpc.aio.ServicerContext
    ) -> None:
        """Abort unless a current validator signed ``request``."""
        committed = self.chain.committed
        try:
            signer = get_fetch_signer(request, committed.chain_id, compute_now_ms())
        except FetchRefused as error:
            await _refuse(self.refusals, context, error)
            return
        if signer is None or committed.validators.get_validator(signer) is None:
            self.refusals("NotAValidator")
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, PRIVATE_WEIGHTS)

    async def GetBlocks(
        self, request: pb.GetBlocksRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.BlockBatch]:
        committed = self.chain.committed
        if request.chain_id != committed.chain_id:
            await _refuse(
                self.refusals, context, WireError(f"blocks are for chain {committed.chain_id!r}")
            )
        latest = committed.height
        stop = min(
            request.to_height or latest, latest, request.from_height + MAX_BLOCKS_PER_REQUEST
        )
        height = max(request.from_height, 1)
        while height <= stop:
            raw = await self.chain.read_block_batch(
                height, stop + 1, BLOCK_BATCH_BLOCKS, BLOCK_BATCH_BYTES
            )
            if not raw:
                return
            yield pb.BlockBatch(
                blocks=[
                    pb.BlockWithCommit(
                        block=pb.Block.FromString(block), commit=pb.Commit.FromString(commit)
                    )
                    for block, commit in raw
                ]
            )
            height += len(raw)


class QueryService(pb_grpc.QueryServicer):  # type: ignore[misc]
    """Status, blocks, validators, accounts, the model and its history."""

    def __init__(
        self,
        chain: ChainReader,
        weights: WeightsReader,
        status: Callable[[], pb.StatusResponse],
        refusals: Refusals,
        genesis_monikers: Mapping[str, str] | None = None,
    ) -> None:
        self.chain = chain
        self.weights = weights
        self.status = status
        self.refusals = refusals
        self.genesis_monikers = dict(genesis_monikers or {})  # address hex -> moniker

    async def Status(
        self, request: pb.StatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.StatusResponse:
        return self.status()

    async def GetBlock(
        self, request: pb.BlockRequest, context: grpc.aio.ServicerContext
    ) -> pb.BlockWithCommit:
        height = request.height or self.chain.committed.height
        raw = await self.chain.read_raw_block(height)
        if raw is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no block at height {height}")
            raise AssertionError("unreachable")  # abort raises
        block, commit = raw
        return pb.BlockWithCommit(
            block=pb.Block.FromString(block), commit=pb.Commit.FromString(commit)
        )

    async def Validators(
        self, request: pb.ValidatorsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ValidatorsResponse:
        state = self.chain.committed
        monikers = {}
        for validator in state.validators.validators:
            bond = state.bonds.get(validator.address)
            name = (bond.moniker if bond else "") or self.genesis_monikers.get(
                validator.address.hex(), ""
            )
            if name:
                monikers[validator.address.hex()] = name
        return pb.ValidatorsResponse(
            height=state.height + 1,
            validators=validator_set_to_proto(state.validators),
            monikers=monikers,
            reputations={a.hex(): v for a, v in state.reputations.items()},
            keeps_reputation=state.params.keeps_reputation,
        )

    async def GetAccount(
        self, request: pb.AccountRequest, context: grpc.aio.ServicerContext
    ) -> pb.AccountResponse:
        if len(request.address) != ADDRESS_LENGTH:
            await _refuse(
                self.refusals, context, WireError(f"address must be {ADDRESS_LENGTH} bytes")
            )
        state = self.chain.committed
        address = Address(request.address)
        account = state.get_account(address)
        response = pb.AccountResponse(
            account=pb.Account(address=address, balance=account.balance, nonce=account.nonce)
        )
        bond = state.bonds.get(address)
        if bond is not None:
            response.bond.CopyFrom(bond_to_proto(address, bond))
        response.unbonding.extend(
            pb.Unbonding(address=u.address, amount=u.amount, release_height=u.release_height)
            for u in state.unbonding
            if u.address == address
        )
        return response

    async def Model(
        self, request: pb.FetchWeightsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WeightsChunk]:
        weights_hash = Hash(request.weights_hash or self.chain.committed.model_hash)
        missing = "this node does not hold those weights (it keeps the last retain_models models)"
        if not self.weights.is_public(weights_hash):
            await context.abort(grpc.StatusCode.NOT_FOUND, missing)
        async for chunk in _stream_weights(self.weights, weights_hash, context, missing):
            yield chunk

    async def History(
        self, request: pb.HistoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.HistoryResponse:
        latest = self.chain.committed.height
        start = max(request.from_height, 1)
        limit = min(request.limit or DEFAULT_HISTORY_ENTRIES, MAX_HISTORY_ENTRIES)
        stop = min(latest, start + limit - 1)
        # One block before (its model) and one after (the record of this range's last score).
        rows = await self.chain.read_history(start - 1 if start > 1 else start, stop + 2)
        previous_model = self.chain.genesis.model_hash
        if start > 1:
            if not rows:
                return pb.HistoryResponse()
            previous_model = rows.pop(0)[0].header.model_hash
        scores = {
            record.scored_height: record.scored
            for _, _, record in rows
            if record is not None and record.scored is not None
        }
        entries = []
        for block, commit, _ in rows[: stop - start + 1]:
            h = block.header
            entries.append(
                pb.HistoryEntry(
                    height=h.height,
                    block_hash=block.hash,
                    proposer=h.proposer,
                    model_hash=h.model_hash,
                    model_updated=h.model_hash != previous_model,
                    txs=len(block.txs),
                    round=commit.round if commit is not None else 0,
                    contributions=len(block.contributions),
                    score=scores.get(h.height),
                    contributors=[c.validator for c in block.contributions],
                )
            )
            previous_model = h.model_hash
        return pb.HistoryResponse(entries=entries)

    async def GetTx(
        self, request: pb.TxRequest, context: grpc.aio.ServicerContext
    ) -> pb.TxResponse:
        if len(request.hash) != HASH_LENGTH:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"a transaction hash is {HASH_LENGTH} bytes"
            )
        found = await self.chain.read_tx(Hash(request.hash))
        if found is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                "no committed transaction with this hash (not yet committed, or refused)",
            )
            raise AssertionError("unreachable")  # abort raises
        block, index = found
        return pb.TxResponse(
            height=block.height,
            index=index,
            block_hash=block.hash,
            tx=tx_to_proto(block.txs[index]),
        )

    async def Genesis(
        self, request: pb.GenesisRequest, context: grpc.aio.ServicerContext
    ) -> pb.GenesisResponse:
        return pb.GenesisResponse(genesis_json=self.chain.genesis_json)


class Malformed:
    """A request whose bytes did not parse; the handler refuses it with INVALID_ARGUMENT."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _safe_deserializer(message_class: Any) -> Any:
    def deserialize(data: bytes) -> Any:
        try:
            return message_class.FromString(data)
        except Exception as error:  # protobuf's DecodeError and friends
            return Malformed(error)

    return deserialize


def _guard_unary(refusals: Refusals, method: Any) -> Any:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, Malformed):
            await _refuse(refusals, context, WireError(f"malformed message: {request.error}"))
        return await method(request, context)

    return handler


def _guard_stream(refusals: Refusals, method: Any) -> Any:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, Malformed):
            await _refuse(refusals, context, WireError(f"malformed message: {request.error}"))
        async for item in method(request, context):
            yield item

    return handler


def add_services(
    server: grpc.aio.Server,
    refusals: Refusals,
    peer: PeerService | None = None,
    query: QueryService | None = None,
) -> None:
    """Register Peer and Query so that undecodable requests get INVALID_ARGUMENT, not UNKNOWN."""
    for service_name, servicer in (("Peer", peer), ("Query", query)):
        if servicer is None:
            continue
        descriptor = pb.DESCRIPTOR.services_by_name[service_name]
        handlers = {}
        for method in descriptor.methods:
            request_class = getattr(pb, method.input_type.name)
            response_class = getattr(pb, method.output_type.name)
            implementation = getattr(servicer, method.name)
            if method.client_streaming:  # Gossip: the servicer refuses Malformed items itself
                handlers[method.name] = grpc.stream_unary_rpc_method_handler(
                    implementation,
                    request_deserializer=_safe_deserializer(request_class),
                    response_serializer=response_class.SerializeToString,
                )
                continue
            factory = (
                grpc.unary_stream_rpc_method_handler
                if method.server_streaming
                else grpc.unary_unary_rpc_method_handler
            )
            guard = _guard_stream if method.server_streaming else _guard_unary
            handlers[method.name] = factory(
                guard(refusals, implementation),
                request_deserializer=_safe_deserializer(request_class),
                response_serializer=response_class.SerializeToString,
            )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(descriptor.full_name, handlers),)
        )
