"""Peer management: dial the validators the chain lists, greet every peer, hear Hellos.

Validators talk to every validator, so each committed state's validator endpoints are dialled;
full nodes and new validators announce themselves with Hello, so that nodes that do not list
them still gossip to them. A Hello counts only when it is signed by the node key it names and the
endpoint it announces answers a dial-back signed by the same key (node/p2p/peer_auth.py); dial-backs
in flight are bounded, and an endpoint that failed one is not dialled again for a while, so a
flood of Hellos with made-up keys and dead endpoints adds nobody and costs little.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from learnchain.consensus.crypto import PrivateKey
from learnchain.consensus.messages import Contribution, SignedTx
from learnchain.consensus.state import ChainState
from learnchain.consensus.types import Address, ChainId, Height
from learnchain.consensus.validators import ValidatorSet
from learnchain.node.p2p.peer_auth import (
    HelloError,
    check_hello,
    is_valid_answer,
    make_answer,
    make_hello,
)
from learnchain.node.p2p.peers import INLINE_WEIGHTS_BYTES, Peer, PeerKind, PeerSet, dial_hello
from learnchain.node.store.weights_store import EncodedWeights
from learnchain.proto import learnchain_pb2 as pb
from learnchain.proto.wire import contribution_to_proto, tx_to_proto

ANNOUNCE_INTERVAL = 5.0  # seconds between Hello rounds to every peer (peers forget on restart)
MAX_DIAL_BACKS = 16  # Hellos being verified at once; more are refused until one ends
RETRY_FAILED_SECONDS = 60.0  # an endpoint whose dial-back failed is refused for this long
MAX_REMEMBERED_FAILURES = 4096
log = logging.getLogger("learnchain.peers")

__all__ = ["HelloError", "PeerManager"]


def compute_inline_weights(weights: EncodedWeights | None) -> bytes:
    """The bytes to push beside the message naming ``weights``: all of them when small enough,
    else none (peers fetch them with FetchWeights)."""
    return b"" if weights is None else weights.read_small(INLINE_WEIGHTS_BYTES)


class PeerManager:
    """The peer set and who is in it."""

    def __init__(
        self,
        peers: PeerSet,
        chain_id: ChainId,
        key: PrivateKey,
        own_addresses: tuple[str, ...],
        advertised: str,
        committed_height: Callable[[], Height],
    ) -> None:
        self.peers = peers
        self._chain_id = chain_id
        self._key = key
        self._node_id = key.address
        self._own_addresses = {a for a in own_addresses if a}
        self._advertised = advertised
        self._committed_height = committed_height
        self._dial_backs: dict[str, asyncio.Task[None]] = {}
        self._failed: OrderedDict[str, float] = OrderedDict()  # endpoint -> when it failed
        self._validators: ValidatorSet | None = None  # of the last committed state

    def is_own_address(self, address: str) -> bool:
        """True for an address this node listens or is reached at."""
        return address in self._own_addresses

    def add_validator_peers(self, state: ChainState) -> None:
        """Dial every other validator's endpoint that ``state`` lists."""
        self._validators = state.validators
        for member in state.validators.validators:
            if (
                member.endpoint
                and member.address != self._node_id
                and not self.is_own_address(member.endpoint)
            ):
                self.peers.add(member.endpoint)

    def find_validator_peer(self, validators: ValidatorSet, address: Address) -> Peer | None:
        """Our peer for the validator ``address`` (by its endpoint in ``validators``)."""
        member = validators.get_validator(address)
        return None if member is None else self.peers.find(member.endpoint)

    def gossip(self, envelope: pb.Envelope) -> None:
        """Send a consensus message to every peer."""
        self.peers.gossip(envelope)

    def gossip_to_validator(
        self, validators: ValidatorSet, address: Address, envelope: pb.Envelope
    ) -> bool:
        """Send to the validator ``address`` alone; False when it is not our peer."""
        peer = self.find_validator_peer(validators, address)
        if peer is None:
            return False
        peer.gossip(envelope)
        return True

    def broadcast_tx(self, signed: SignedTx) -> None:
        """Pass a transaction on to every peer."""
        self.peers.broadcast("SubmitTx", tx_to_proto(signed))

    def announce_contribution(self, contribution: Contribution, weights: EncodedWeights) -> None:
        """Send a contribution to the validators alone (it reflects this node's private data),
        with its weights beside it when they are small."""
        if self._validators is None:
            return
        announcement = pb.ContributionAnnouncement(contribution=contribution_to_proto(contribution))
        envelope = pb.Envelope(contribution=announcement, weights=compute_inline_weights(weights))
        for member in self._validators.validators:
            if member.address != self._node_id:
                self.gossip_to_validator(self._validators, member.address, envelope)

    def receive_hello(self, request: pb.HelloRequest) -> pb.HelloResponse:
        """A node announces the address to gossip to: checked, answered, and the endpoint added
        once a dial-back proves that the same key answers there."""
        check_hello(request, self._chain_id)
        endpoint = request.endpoint
        if endpoint and request.node_id != self._node_id and not self.is_own_address(endpoint):
            known = self.peers.find(endpoint)
            if known is not None:
                known.redial()
            elif endpoint not in self._dial_backs:
                self._start_dial_back(endpoint, Address(request.node_id))
        return make_answer(self._key, self._chain_id, request, self._committed_height())

    def _start_dial_back(self, endpoint: str, node_id: Address) -> None:
        failed_at = self._failed.get(endpoint)
        if failed_at is not None and time.monotonic() - failed_at < RETRY_FAILED_SECONDS:
            raise HelloError(f"{endpoint} did not answer as this node lately; try again later")
        if len(self._dial_backs) >= MAX_DIAL_BACKS:
            raise HelloError("too many Hellos being verified; try again later")
        task = asyncio.create_task(self._dial_back(endpoint, node_id))
        self._dial_backs[endpoint] = task
        task.add_done_callback(lambda _: self._dial_backs.pop(endpoint, None))

    async def _dial_back(self, endpoint: str, node_id: Address) -> None:
        """Add ``endpoint`` as a peer if the node there proves it holds ``node_id``'s key."""
        challenge = make_hello(self._key, self._chain_id, "")
        answer = await dial_hello(endpoint, challenge, self.peers.open_channel)
        if answer is not None and is_valid_answer(answer, self._chain_id, challenge.nonce, node_id):
            self._failed.pop(endpoint, None)
            self.peers.add(endpoint, PeerKind.ANNOUNCED)
            return
        log.debug("hello for %s: the dial-back did not answer as %s", endpoint, node_id.hex())
        self._failed[endpoint] = time.monotonic()
        self._failed.move_to_end(endpoint)
        while len(self._failed) > MAX_REMEMBERED_FAILURES:
            self._failed.popitem(last=False)

    async def announce(self) -> None:
        """Say Hello to every peer now and then (naming no endpoint when this node advertises
        none), and drop announced peers that stay unreachable (runs until cancelled)."""
        while True:
            hello = make_hello(self._key, self._chain_id, self._advertised)
            await asyncio.gather(*(peer.hello(hello) for peer in list(self.peers.peers)))
            self.peers.evict_unreachable(time.monotonic())
            await asyncio.sleep(ANNOUNCE_INTERVAL)

    async def close(self) -> None:
        """Stop dial-backs and close every channel."""
        for task in list(self._dial_backs.values()):
            task.cancel()
        await asyncio.gather(*self._dial_backs.values(), return_exceptions=True)
        await self.peers.close()
