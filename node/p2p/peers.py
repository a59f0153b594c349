"""Outgoing gRPC: channels to peers (with gRPC's reconnect and backoff).

The peers are the persistent peers from config.toml, the validators' endpoints from the chain
state, and nodes that announced themselves with a Hello that checked (full nodes, new
validators), up to ``MAX_ANNOUNCED_PEERS`` of those. Announced peers are the only ones evicted:
when one stays unreachable for ``EVICT_UNREACHABLE_SECONDS``, or to make room for a newer one.
Each peer's outgoing queue is bounded in messages and in bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc

from learnchain.proto import learnchain_pb2 as pb
from learnchain.proto import learnchain_pb2_grpc as pb_grpc

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
INLINE_WEIGHTS_BYTES = 1 << 20  # weights up to this size are pushed beside their message
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 5000),
    ("grpc.keepalive_time_ms", 30000),
    # Each channel its own connection: a redialled peer's fresh channel must not inherit the old
    # one's connection backoff from gRPC's process-wide subchannel pool.
    ("grpc.use_local_subchannel_pool", 1),
]
SEND_TIMEOUT = 5.0
FETCH_STALL_SECONDS = 5.0  # a weights fetch with no chunk for this long is given up
MAX_ANNOUNCED_PEERS = 64  # peers known only by their Hello; validators and config's are not counted
MAX_OUTBOX = 4096  # gossip messages queued for one peer; past it new ones are dropped
MAX_OUTBOX_BYTES = 8 << 20  # and their bytes (a dead peer must not hold weights in memory)
EVICT_UNREACHABLE_SECONDS = 60.0
MAX_RELAYED_VOTES = 1024  # votes in one VoteBatch
STREAM_RETRY_SECONDS = (0.2, 5.0)  # a broken Gossip stream is retried after 0.2 s, doubling to 5

log = logging.getLogger("learnchain.peers")

ChannelFactory = Callable[[str], grpc.aio.Channel]
"""Opens a channel to a peer's address (plaintext, or mutual TLS: node/home/tls.py)."""


def open_plain_channel(address: str) -> grpc.aio.Channel:
    """A plaintext channel to a peer."""
    return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)


def make_tls_channel_factory(
    credentials: grpc.ChannelCredentials, options: list[tuple[str, object]]
) -> ChannelFactory:
    """Channels to peers with mutual TLS (``options``: the name every node certificate holds)."""

    def open_channel(address: str) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(address, credentials, options=CHANNEL_OPTIONS + options)

    return open_channel


FetchSigner = Callable[[bytes], pb.FetchWeightsRequest]
WeightsCounter = Callable[[str, int], None]  # ("sent" | "received", bytes)
"""Makes the (signed) request for the weights with a given hash."""


def make_unsigned_fetch(weights_hash: bytes) -> pb.FetchWeightsRequest:
    """A fetch that asks as nobody in particular (enough for committed models)."""
    return pb.FetchWeightsRequest(weights_hash=weights_hash)


class PeerKind(enum.Enum):
    """Why a peer is in the set; only announced peers are ever evicted."""

    PERSISTENT = "persistent"
    VALIDATOR = "validator"
    ANNOUNCED = "announced"


class OversizedWeights(Exception):
    """A peer announced weights larger than the chain's limit (none of them is read)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"{size} bytes, over the chain's max_weights_bytes ({limit})")
        self.size = size
        self.limit = limit


class Peer:
    """One peer."""

    def __init__(
        self,
        address: str,
        kind: PeerKind = PeerKind.PERSISTENT,
        sign_fetch: FetchSigner = make_unsigned_fetch,
        open_channel: ChannelFactory = open_plain_channel,
    ) -> None:
        self.address = address
        self.kind = kind
        self._sign_fetch = sign_fetch
        self._open_channel = open_channel
        self.last_seen = time.monotonic()  # when a call to it last went through (or it joined)
        self.channel = open_channel(address)
        self.stub = pb_grpc.PeerStub(self.channel)
        self._connected = False
        self.dropped = 0
        self.count_weights_bytes: WeightsCounter = lambda _direction, _size: None  # by PeerSet
        self._outbox: deque[pb.Envelope] = deque()
        self._outbox_sizes: deque[int] = deque()  # each queued message's bytes, in order
        self._outbox_bytes = 0
        self._queued = asyncio.Event()
        self._stream: asyncio.Task[None] | None = None
        self._attempt = 0  # Gossip calls made; only the latest one's request stream may send
        self._unreachable = False  # the Gossip stream failed with UNAVAILABLE and waits to retry
        self._retry_now = asyncio.Event()
        self._closing: set[asyncio.Task[None]] = set()

    def gossip(self, envelope: pb.Envelope, size: int | None = None) -> None:
        """Queue a consensus message (of ``size`` bytes, when the caller knows) for this peer's
        Gossip stream; dropped when the queue is full: consensus re-gossips what matters, and a
        dead peer must not grow our memory."""
        if size is None:
            size = envelope.ByteSize()
        if len(self._outbox) >= MAX_OUTBOX or self._outbox_bytes + size > MAX_OUTBOX_BYTES:
            self.dropped += 1
            return
        if envelope.weights:
            self.count_weights_bytes("sent", len(envelope.weights))
        self._outbox.append(envelope)
        self._outbox_sizes.append(size)
        self._outbox_bytes += size
        self._queued.set()
        if self._stream is None or self._stream.done():
            self._stream = asyncio.create_task(self._keep_streaming())

    async def _keep_streaming(self) -> None:
        """One long-lived Gossip stream, reopened with backoff when it breaks. A message taken
        from the queue when the stream broke is lost, as on any lossy link."""
        first, most = STREAM_RETRY_SECONDS
        backoff = first
        while True:
            try:
                try:
                    await self.stub.Gossip(self._outgoing(self._attempt))
                finally:
                    self._attempt += 1  # the ended call's request stream, if still read, stops
            except grpc.aio.AioRpcError as error:
                if self.connected:
                    backoff = first  # it worked until now: retry soon
                self.connected = False
                log.debug("peer %s Gossip: %s", self.address, error.code().name)
                self._unreachable = error.code() == grpc.StatusCode.UNAVAILABLE
                self._retry_now.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._retry_now.wait(), backoff)
                self._unreachable = False
                backoff = min(backoff * 2, most)

    def redial(self) -> None:
        """The peer has just said Hello, so it is up: when our stream to it is waiting to retry
        after UNAVAILABLE, retry now, on a fresh channel (the old one would wait out gRPC's own
        reconnect backoff). A peer that starts or restarts after us then hears from us at once,
        as an inbound connection would do in CometBFT's p2p layer."""
        if not self._unreachable:
            return
        old, self.channel = self.channel, self._open_channel(self.address)
        self.stub = pb_grpc.PeerStub(self.channel)
        closing = asyncio.create_task(old.close())
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)
        self._unreachable = False
        self._retry_now.set()

    async def _outgoing(self, attempt: int) -> AsyncIterator[pb.Envelope]:
        """The messages of Gossip call ``attempt``. gRPC may go on reading a call's request stream
        after the call failed; such a stale stream ends instead of taking messages to nowhere."""
        while True:
            while not self._outbox:
                self._queued.clear()
                await self._queued.wait()
            if attempt != self._attempt:
                return
            queued = len(self._outbox)
            envelope = take_next_envelope(self._outbox)
            for _ in range(queued - len(self._outbox)):  # one message, or merged vote batches
                self._outbox_bytes -= self._outbox_sizes.popleft()
            yield envelope
            self._mark_seen()

    @property
    def connected(self) -> bool:
        """Whether the last call to it went through."""
        return self._connected

    @connected.setter
    def connected(self, value: bool) -> None:
        if value != self._connected:
            if value:
                log.info("peer up", extra={"peer": self.address, "kind": self.kind.value})
            else:
                log.warning("peer down", extra={"peer": self.address, "kind": self.kind.value})
        self._connected = value

    def _mark_seen(self) -> None:
        self.connected = True
        self.last_seen = time.monotonic()

    @property
    def outbox_bytes(self) -> int:
        """Bytes of gossip queued for this peer."""
        return self._outbox_bytes

    async def send(self, method: str, message: object) -> bool:
        """Call a unary Peer method; False (and logged at debug) when the peer is unreachable."""
        try:
            await getattr(self.stub, method)(message, timeout=SEND_TIMEOUT)
        except grpc.aio.AioRpcError as error:
            self.connected = error.code() not in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
            )
            log.debug("peer %s %s: %s", self.address, method, error.code().name)
            return False
        self._mark_seen()
        return True

    async def hello(self, request: pb.HelloRequest) -> pb.HelloResponse | None:
        """Announce ourselves; the peer's answer, or None when it is unreachable or refuses."""
        response = await call_hello(self.stub, self.address, request)
        if response is None:
            self.connected = False
        else:
            self._mark_seen()
        return response

    async def fetch_weights(self, weights_hash: bytes, max_bytes: int, into: Path) -> bool:
        """Stream weights from this peer into the file ``into``; False when it does not have
        them, sends more than ``max_bytes`` or than the size it announced, or stalls (no chunk
        within ``FETCH_STALL_SECONDS``, so a hung peer costs seconds, not the whole fetch)."""
        total = size = 0
        call = self.stub.FetchWeights(self._sign_fetch(weights_hash))
        try:
            with into.open("wb") as handle:
                while True:
                    chunk = await asyncio.wait_for(call.read(), FETCH_STALL_SECONDS)
                    if chunk is grpc.aio.EOF:
                        break
                    if not total:
                        if chunk.total_size > max_bytes:
                            raise OversizedWeights(chunk.total_size, max_bytes)
                        if not chunk.total_size:
                            return False  # the first chunk must announce the size
                        total = chunk.total_size
                    if size + len(chunk.data) > total:
                        return False
                    handle.write(chunk.data)
                    size += len(chunk.data)
                    self.count_weights_bytes("received", len(chunk.data))
        except TimeoutError:
            self.connected = False
            log.debug("peer %s FetchWeights stalled", self.address)
            return False
        except grpc.aio.AioRpcError:
            return False
        except OSError as error:  # this node's disk (full): the weights cannot be kept here
            log.warning("weights from %s not kept: %s", self.address, error.strerror)
            return False
        finally:
            call.cancel()
        self._mark_seen()
        return total > 0 and size == total

    async def stream_parts(
        self, weights_hash: bytes, stripe: int, stripes: int, max_bytes: int
    ) -> AsyncIterator[tuple[int, int, bytes]]:
        """(part, total size, data) for each part of one stripe of the weights, as this peer
        has them (node/weights/weights_parts.py); ends early when it stalls, errs or says no."""
        request = self._sign_fetch(weights_hash)
        request.stripe, request.stripes = stripe, stripes
        call = self.stub.FetchWeights(request)
        try:
            while True:
                chunk = await asyncio.wait_for(call.read(), FETCH_STALL_SECONDS)
                if chunk is grpc.aio.EOF:
                    break
                if chunk.total_size > max_bytes:
                    return
                self.count_weights_bytes("received", len(chunk.data))
                yield int(chunk.part), int(chunk.total_size), bytes(chunk.data)
        except TimeoutError:
            log.debug("peer %s FetchWeights stripe %d/%d stalled", self.address, stripe, stripes)
        except grpc.aio.AioRpcError:
            return
        finally:
            call.cancel()
        self._mark_seen()

    def get_blocks(self, chain_id: str, from_height: int) -> AsyncIterator[pb.BlockBatch]:
        """Batches of committed blocks of ``chain_id`` with their commits from ``from_height``."""
        stream: AsyncIterator[pb.BlockBatch] = self.stub.GetBlocks(
            pb.GetBlocksRequest(chain_id=chain_id, from_height=from_height), timeout=120
        )
        return stream

    async def close(self) -> None:
        """Close the channel (and wait for the ones replaced by redials to close)."""
        if self._stream is not None:
            self._stream.cancel()
        await self.channel.close()
        await asyncio.gather(*self._closing, return_exceptions=True)


async def call_hello(
    stub: pb_grpc.PeerStub, address: str, request: pb.HelloRequest
) -> pb.HelloResponse | None:
    """Say Hello on ``stub``; the answer, or None when the node is unreachable or refuses."""
    try:
        response: pb.HelloResponse = await stub.Hello(request, timeout=SEND_TIMEOUT)
    except grpc.aio.AioRpcError as error:
        log.debug("peer %s Hello: %s %s", address, error.code().name, error.details())
        return None
    return response


async def dial_hello(
    address: str, request: pb.HelloRequest, open_channel: ChannelFactory = open_plain_channel
) -> pb.HelloResponse | None:
    """Say Hello to ``address`` on a channel of its own, closed afterwards (a dial-back)."""
    async with open_channel(address) as channel:
        return await call_hello(pb_grpc.PeerStub(channel), address, request)


def take_next_envelope(outbox: deque[pb.Envelope]) -> pb.Envelope:
    """The next message to send: the oldest, with the relayed votes queued right behind it merged
    in when it is a vote batch (a relaying proposer queues them faster than one stream sends)."""
    envelope = outbox.popleft()
    if envelope.WhichOneof("body") != "votes":
        return envelope
    merged: pb.Envelope | None = None
    while outbox and outbox[0].WhichOneof("body") == "votes":
        count = len(envelope.votes.votes) if merged is None else len(merged.votes.votes)
        if count + len(outbox[0].votes.votes) > MAX_RELAYED_VOTES:
            break
        if merged is None:
            merged = pb.Envelope()
            merged.votes.votes.extend(envelope.votes.votes)
        merged.votes.votes.extend(outbox.popleft().votes.votes)
    return envelope if merged is None else merged


class PeerSet:
    """All peers; broadcasts are concurrent and never block the caller for long."""

    def __init__(
        self,
        addresses: list[str],
        sign_fetch: FetchSigner = make_unsigned_fetch,
        open_channel: ChannelFactory = open_plain_channel,
    ) -> None:
        self._sign_fetch = sign_fetch
        self.open_channel = open_channel
        self.peers = [Peer(a, PeerKind.PERSISTENT, sign_fetch, open_channel) for a in addresses]
        self._count_weights_bytes: WeightsCounter = lambda _direction, _size: None
        self._tasks: set[asyncio.Task[bool]] = set()
        self._closing: set[asyncio.Task[None]] = set()

    def count_weights_bytes(self, count: WeightsCounter) -> None:
        """Report the weights bytes every peer sends or receives to ``count``."""
        self._count_weights_bytes = count
        for peer in self.peers:
            peer.count_weights_bytes = count

    def broadcast(self, method: str, message: object) -> None:
        """Send to every peer in the background."""
        for peer in self.peers:
            task = asyncio.create_task(peer.send(method, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def add(self, address: str, kind: PeerKind = PeerKind.VALIDATOR) -> bool:
        """Dial ``address`` from now on; False when it is known already, or it is announced and
        ``MAX_ANNOUNCED_PEERS`` announced peers are all connected (else the one unreachable the
        longest makes room)."""
        known = self.find(address)
        if known is not None:
            if known.kind is PeerKind.ANNOUNCED and kind is not PeerKind.ANNOUNCED:
                known.kind = kind  # an announced node became a validator: never evicted now
            return False
        if kind is PeerKind.ANNOUNCED and self.count(PeerKind.ANNOUNCED) >= MAX_ANNOUNCED_PEERS:
            victim = self._find_evictable()
            if victim is None:
                return False
            self.remove(victim, "to make room")
        peer = Peer(address, kind, self._sign_fetch, self.open_channel)
        peer.count_weights_bytes = self._count_weights_bytes
        self.peers.append(peer)
        log.info("new %s peer %s", kind.value, address)
        return True

    def _find_evictable(self) -> Peer | None:
        """The announced peer not heard from for the longest, if it is not connected."""
        candidates = [p for p in self.peers if p.kind is PeerKind.ANNOUNCED and not p.connected]
        return min(candidates, key=lambda p: p.last_seen, default=None)

    def remove(self, peer: Peer, why: str) -> None:
        """Stop dialling ``peer`` and close its channel."""
        self.peers.remove(peer)
        closing = asyncio.create_task(peer.close())
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)
        log.info("dropped peer %s (%s)", peer.address, why)

    def evict_unreachable(self, now: float) -> int:
        """Drop announced peers unreachable for ``EVICT_UNREACHABLE_SECONDS``; how many."""
        doomed = [
            p
            for p in self.peers
            if p.kind is PeerKind.ANNOUNCED
            and not p.connected
            and now - p.last_seen > EVICT_UNREACHABLE_SECONDS
        ]
        for peer in doomed:
            self.remove(peer, f"unreachable for {EVICT_UNREACHABLE_SECONDS:.0f} s")
        return len(doomed)

    def count(self, kind: PeerKind) -> int:
        """How many peers of ``kind``."""
        return sum(p.kind is kind for p in self.peers)

    def gossip(self, envelope: pb.Envelope) -> None:
        """Send a consensus message to every peer on its Gossip stream."""
        size = envelope.ByteSize()
        for peer in self.peers:
            peer.gossip(envelope, size)

    def find(self, address: str) -> Peer | None:
        """The peer at ``address``, if it is one of ours."""
        return next((p for p in self.peers if p.address == address), None)

    @property
    def connected(self) -> int:
        """Peers whose last call went through."""
        return sum(p.connected for p in self.peers)

    async def close(self) -> None:
        """Close every channel."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(
            *(p.close() for p in self.peers), *self._closing, return_exceptions=True
        )
