"""The gRPC services a node serves: Peer (between validators) and Query (CLI and tools).

Every request is size-limited by the server options and decoded through ``node.wire``; a bad
message is refused with INVALID_ARGUMENT, counted, and changes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc

from consensus.types import Address, Hash
from node.peers import INLINE_WEIGHTS_BYTES, MAX_RELAYED_VOTES
from node.wire import (
    WireError,
    bond_to_proto,
    contribution_from_proto,
    evidence_from_proto,
    proposal_from_proto,
    tx_from_proto,
    vote_from_proto,
)
from proto import learnchain_pb2 as pb
from proto import learnchain_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from node.daemon import Node

MAX_BLOCKS_PER_REQUEST = 100_000
BLOCK_BATCH_BLOCKS = 64  # blocks per GetBlocks message
BLOCK_BATCH_BYTES = 1024 * 1024  # bytes per GetBlocks message (a larger single block goes alone)


async def _refuse(node: Node, context: grpc.aio.ServicerContext, error: Exception) -> None:
    node.metrics.rejected.labels(reason=type(error).__name__).inc()
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))


class PeerService(pb_grpc.PeerServicer):  # type: ignore[misc]
    """Consensus messages, weights, catch-up and transactions."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def Hello(
        self, request: pb.HelloRequest, context: grpc.aio.ServicerContext
    ) -> pb.HelloResponse:
        try:
            return self.node.receive_hello(request)
        except ValueError as error:
            await _refuse(self.node, context, error)
            return pb.HelloResponse()

    async def Gossip(
        self, requests: AsyncIterator[pb.Envelope | Malformed], context: grpc.aio.ServicerContext
    ) -> pb.Ack:
        """A peer's stream of consensus messages; the first bad one ends the stream."""
        async for envelope in requests:
            try:
                if isinstance(envelope, Malformed):
                    raise WireError(f"malformed message: {envelope.error}")
                self._dispatch(envelope)
            except (WireError, ValueError) as error:
                await _refuse(self.node, context, error)
        return pb.Ack()

    def _dispatch(self, envelope: pb.Envelope) -> None:
        kind = envelope.WhichOneof("body")
        if envelope.weights and kind not in ("proposal", "contribution"):
            raise WireError("weights travel only beside a proposal or a contribution")
        if len(envelope.weights) > INLINE_WEIGHTS_BYTES:
            raise WireError(f"inline weights over {INLINE_WEIGHTS_BYTES} bytes")
        if kind == "vote":
            self.node.receive_vote(vote_from_proto(envelope.vote))
        elif kind == "votes":
            if not 0 < len(envelope.votes.votes) <= MAX_RELAYED_VOTES:
                raise WireError(f"a vote batch holds 1 to {MAX_RELAYED_VOTES} votes")
            for vote in [vote_from_proto(v) for v in envelope.votes.votes]:
                self.node.receive_vote(vote)
        elif kind == "proposal":
            self.node.receive_proposal(proposal_from_proto(envelope.proposal), envelope.weights)
        elif kind == "evidence":
            self.node.receive_evidence(evidence_from_proto(envelope.evidence))
        elif kind == "contribution":
            self.node.receive_contribution(
                contribution_from_proto(envelope.contribution.contribution), envelope.weights
            )
        else:
            raise WireError("empty envelope")

    async def SendProposal(self, request: pb.Proposal, context: grpc.aio.ServicerContext) -> pb.Ack:
        try:
            self.node.receive_proposal(proposal_from_proto(request))
        except WireError as error:
            await _refuse(self.node, context, error)
        return pb.Ack()

    async def SendVote(self, request: pb.Vote, context: grpc.aio.ServicerContext) -> pb.Ack:
        try:
            self.node.receive_vote(vote_from_proto(request))
        except WireError as error:
            await _refuse(self.node, context, error)
        return pb.Ack()

    async def SendEvidence(self, request: pb.Evidence, context: grpc.aio.ServicerContext) -> pb.Ack:
        try:
            self.node.receive_evidence(evidence_from_proto(request))
        except WireError as error:
            await _refuse(self.node, context, error)
        return pb.Ack()

    async def SendContribution(
        self, request: pb.ContributionAnnouncement, context: grpc.aio.ServicerContext
    ) -> pb.Ack:
        try:
            self.node.receive_contribution(contribution_from_proto(request.contribution))
        except (WireError, ValueError) as error:
            await _refuse(self.node, context, error)
        return pb.Ack()

    async def SubmitTx(self, request: pb.Tx, context: grpc.aio.ServicerContext) -> pb.TxAck:
        try:
            tx_hash = self.node.submit_tx(tx_from_proto(request))
        except (WireError, ValueError) as error:
            await _refuse(self.node, context, error)
            return pb.TxAck()
        return pb.TxAck(tx_hash=tx_hash)

    async def FetchWeights(
        self, request: pb.FetchWeightsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WeightsChunk]:
        if len(request.weights_hash) != 32:
            await _refuse(self.node, context, WireError("weights hash must be 32 bytes"))
        store = self.node.store
        size = store.get_weights_size(Hash(request.weights_hash))
        if size is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such weights")
        first = True
        for chunk in store.iter_weights(Hash(request.weights_hash)):
            yield pb.WeightsChunk(data=chunk, total_size=size if first else 0)
            first = False

    async def GetBlocks(
        self, request: pb.GetBlocksRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.BlockBatch]:
        latest = self.node.committed.height
        stop = min(
            request.to_height or latest, latest, request.from_height + MAX_BLOCKS_PER_REQUEST
        )
        height = max(request.from_height, 1)
        while height <= stop:
            raw = await self.node.read_block_batch(
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

    def __init__(self, node: Node) -> None:
        self.node = node

    async def Status(
        self, request: pb.StatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.StatusResponse:
        return self.node.get_status()

    async def GetBlock(
        self, request: pb.BlockRequest, context: grpc.aio.ServicerContext
    ) -> pb.BlockWithCommit:
        height = request.height or self.node.committed.height
        raw = list(self.node.store.iter_raw_blocks(height, height + 1))
        if not raw:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no block at height {height}")
        block, commit = raw[0]
        return pb.BlockWithCommit(
            block=pb.Block.FromString(block), commit=pb.Commit.FromString(commit)
        )

    async def Validators(
        self, request: pb.ValidatorsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ValidatorsResponse:
        from node.wire import state_to_proto

        state = self.node.committed
        return pb.ValidatorsResponse(
            height=state.height + 1, validators=state_to_proto(state).validators
        )

    async def GetAccount(
        self, request: pb.AccountRequest, context: grpc.aio.ServicerContext
    ) -> pb.AccountResponse:
        if len(request.address) != 20:
            await _refuse(self.node, context, WireError("address must be 20 bytes"))
        state = self.node.committed
        address = Address(request.address)
        account = state.get_account(address)
        response = pb.AccountResponse(
            account=pb.Account(address=address, balance=account.balance, nonce=account.nonce)
        )
        bond = state.bonds.get(address)
        if bond is not None:
            response.bond.CopyFrom(bond_to_proto(address, bond))
        return response

    async def Model(
        self, request: pb.FetchWeightsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WeightsChunk]:
        weights_hash = Hash(request.weights_hash or self.node.committed.model_hash)
        size = self.node.store.get_weights_size(weights_hash)
        if size is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                "this node does not hold those weights (it keeps the last retain_models models)",
            )
        first = True
        for chunk in self.node.store.iter_weights(weights_hash):
            yield pb.WeightsChunk(data=chunk, total_size=size if first else 0)
            first = False

    async def History(
        self, request: pb.HistoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.HistoryResponse:
        latest = self.node.committed.height
        start = max(request.from_height, 1)
        stop = min(latest, start + min(request.limit or 100, 10_000) - 1)
        entries = []
        previous_model = None
        if start > 1:
            before = self.node.store.get_block(start - 1)
            previous_model = before.header.model_hash if before else None
        for height in range(start, stop + 1):
            block = self.node.store.get_block(height)
            if block is None:
                break
            h = block.header
            entries.append(
                pb.HistoryEntry(
                    height=height,
                    block_hash=block.hash,
                    proposer=h.proposer,
                    model_hash=h.model_hash,
                    model_updated=(previous_model is not None and h.model_hash != previous_model)
                    or (height == 1 and h.model_hash != self.node.genesis_state.model_hash),
                    txs=len(block.txs),
                )
            )
            previous_model = h.model_hash
        return pb.HistoryResponse(entries=entries)

    async def Genesis(
        self, request: pb.GenesisRequest, context: grpc.aio.ServicerContext
    ) -> pb.GenesisResponse:
        return pb.GenesisResponse(genesis_json=self.node.genesis_json)


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


def _guard_unary(node: Node, method: Any) -> Any:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, Malformed):
            await _refuse(node, context, WireError(f"malformed message: {request.error}"))
        return await method(request, context)

    return handler


def _guard_stream(node: Node, method: Any) -> Any:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, Malformed):
            await _refuse(node, context, WireError(f"malformed message: {request.error}"))
        async for item in method(request, context):
            yield item

    return handler


def add_services(server: grpc.aio.Server, node: Node) -> None:
    """Register Peer and Query so that undecodable requests get INVALID_ARGUMENT, not UNKNOWN."""
    for service_name, servicer in (("Peer", PeerService(node)), ("Query", QueryService(node))):
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
                guard(node, implementation),
                request_deserializer=_safe_deserializer(request_class),
                response_serializer=response_class.SerializeToString,
            )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(descriptor.full_name, handlers),)
        )
