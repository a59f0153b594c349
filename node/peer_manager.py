"""Peer management: dial the validators the chain lists, greet every peer, hear Hellos.

Validators talk to every validator, so each committed state's validator endpoints are dialled;
full nodes and new validators announce themselves with Hello, so that nodes that do not list
them still gossip to them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from consensus.messages import Contribution, SignedTx
from consensus.state import ChainState
from consensus.types import ADDRESS_LENGTH, MAX_ENDPOINT_LENGTH, Address, ChainId, Height
from consensus.validators import ValidatorSet
from node.files import ConfigError, check_host_port
from node.learning import EncodedWeights
from node.peers import INLINE_WEIGHTS_BYTES, Peer, PeerSet
from node.wire import contribution_to_proto, tx_to_proto
from proto import learnchain_pb2 as pb

ANNOUNCE_INTERVAL = 5.0  # seconds between Hello rounds to every peer (peers forget on restart)


def compute_inline_weights(weights: EncodedWeights | None) -> bytes:
    """The bytes to push beside the message naming ``weights``: all of them when small enough,
    else none (peers fetch them with FetchWeights)."""
    if weights is None or len(weights.data) > INLINE_WEIGHTS_BYTES:
        return b""
    return weights.data


class HelloError(ValueError):
    """A Hello refused; no peer was added."""


class PeerManager:
    """The peer set and who is in it."""

    def __init__(
        self,
        peers: PeerSet,
        chain_id: ChainId,
        node_id: Address,
        own_addresses: tuple[str, ...],
        advertised: str,
        committed_height: Callable[[], Height],
    ) -> None:
        self.peers = peers
        self._chain_id = chain_id
        self._node_id = node_id
        self._own_addresses = {a for a in own_addresses if a}
        self._advertised = advertised
        self._committed_height = committed_height

    def is_own_address(self, address: str) -> bool:
        """True for an address this node listens or is reached at."""
        return address in self._own_addresses

    def add_validator_peers(self, state: ChainState) -> None:
        """Dial every other validator's endpoint that ``state`` lists."""
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
        """Gossip a contribution, with its weights beside it when they are small."""
        announcement = pb.ContributionAnnouncement(contribution=contribution_to_proto(contribution))
        self.gossip(pb.Envelope(contribution=announcement, weights=compute_inline_weights(weights)))

    def receive_hello(self, request: pb.HelloRequest) -> pb.HelloResponse:
        """A node announces the address to gossip to; checked, then added to the peers."""
        if request.chain_id != self._chain_id:
            raise HelloError(f"hello is for chain {request.chain_id!r}")
        if len(request.node_id) != ADDRESS_LENGTH:
            raise HelloError(f"node_id must be {ADDRESS_LENGTH} bytes")
        if not 0 < len(request.endpoint) <= MAX_ENDPOINT_LENGTH:
            raise HelloError(f"endpoint must be 1 to {MAX_ENDPOINT_LENGTH} characters")
        try:
            check_host_port(Path("hello"), "endpoint", request.endpoint)
        except ConfigError as error:
            raise HelloError(str(error)) from None
        if request.node_id != self._node_id and not self.is_own_address(request.endpoint):
            known = self.peers.find(request.endpoint)
            if known is None:
                self.peers.add(request.endpoint)
            else:
                known.redial()
        return pb.HelloResponse(
            chain_id=self._chain_id, node_id=self._node_id, height=self._committed_height()
        )

    async def announce(self) -> None:
        """Say Hello to every peer now and then (runs until cancelled)."""
        request = pb.HelloRequest(
            chain_id=self._chain_id, node_id=self._node_id, endpoint=self._advertised
        )
        while True:
            await asyncio.gather(*(peer.hello(request) for peer in list(self.peers.peers)))
            await asyncio.sleep(ANNOUNCE_INTERVAL)

    async def close(self) -> None:
        """Close every channel."""
        await self.peers.close()
