"""Requests between nodes signed by the node key: Hellos, their answers, weights fetches.

A Hello proves that its sender holds the key of the node id it names; its answer, signed over
the asker's fresh nonce, proves that the node at the dialled endpoint holds that key. A
weights fetch proves which validator asks, within ``FETCH_CLOCK_SKEW_MS`` of the server's time.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from learnchain.consensus.crypto import (
    PrivateKey,
    compute_address,
    is_valid_public_key,
    is_valid_signature,
)
from learnchain.consensus.encoding import encode_bytes, encode_str, encode_uint
from learnchain.consensus.types import (
    ADDRESS_LENGTH,
    MAX_ENDPOINT_LENGTH,
    Address,
    ChainId,
    PublicKey,
    Signature,
)
from learnchain.node.home.files import ConfigError, check_host_port
from learnchain.proto import learnchain_pb2 as pb

NONCE_LENGTH = 16
FETCH_CLOCK_SKEW_MS = 300_000  # a signed fetch is good for five minutes either way
_HELLO = b"learnchain/hello/v1"
_ANSWER = b"learnchain/hello-answer/v1"
_FETCH = b"learnchain/fetch-weights/v1"


class HelloError(ValueError):
    """A Hello refused; no peer was added."""


class FetchRefused(ValueError):
    """A weights fetch whose signature or signer does not check."""


def compute_hello_sign_bytes(chain_id: ChainId, endpoint: str, nonce: bytes) -> bytes:
    """What a Hello's signature covers."""
    return _HELLO + encode_str(chain_id) + encode_str(endpoint) + encode_bytes(nonce)


def compute_answer_sign_bytes(chain_id: ChainId, nonce: bytes) -> bytes:
    """What the answer to a Hello signs: the asker's nonce, for this chain."""
    return _ANSWER + encode_str(chain_id) + encode_bytes(nonce)


def compute_fetch_sign_bytes(chain_id: ChainId, weights_hash: bytes, time_ms: int) -> bytes:
    """What a weights fetch's signature covers."""
    return _FETCH + encode_str(chain_id) + encode_bytes(weights_hash) + encode_uint(time_ms)


def make_hello(key: PrivateKey, chain_id: ChainId, endpoint: str) -> pb.HelloRequest:
    """A signed Hello announcing ``endpoint``, with a fresh nonce."""
    nonce = os.urandom(NONCE_LENGTH)
    return pb.HelloRequest(
        chain_id=chain_id,
        node_id=key.address,
        endpoint=endpoint,
        public_key=key.public_key,
        nonce=nonce,
        signature=key.sign(compute_hello_sign_bytes(chain_id, endpoint, nonce)),
    )


def make_answer(
    key: PrivateKey, chain_id: ChainId, request: pb.HelloRequest, height: int
) -> pb.HelloResponse:
    """Our answer to a Hello, signed over its nonce."""
    return pb.HelloResponse(
        chain_id=chain_id,
        node_id=key.address,
        height=height,
        public_key=key.public_key,
        signature=key.sign(compute_answer_sign_bytes(chain_id, request.nonce)),
    )


def check_hello(request: pb.HelloRequest, chain_id: ChainId) -> None:
    """Raise HelloError unless ``request`` is a well-formed Hello for ``chain_id`` signed by the
    key of the node id it names, announcing a host:port or nothing (a dial-back)."""
    if request.chain_id != chain_id:
        raise HelloError(f"hello is for chain {request.chain_id!r}")
    if len(request.node_id) != ADDRESS_LENGTH:
        raise HelloError(f"node_id must be {ADDRESS_LENGTH} bytes")
    if not is_valid_public_key(request.public_key):
        raise HelloError("public_key is not an Ed25519 key")
    if compute_address(PublicKey(request.public_key)) != request.node_id:
        raise HelloError("node_id is not the address of public_key")
    if len(request.nonce) != NONCE_LENGTH:
        raise HelloError(f"nonce must be {NONCE_LENGTH} bytes")
    if len(request.endpoint) > MAX_ENDPOINT_LENGTH:
        raise HelloError(f"endpoint must be at most {MAX_ENDPOINT_LENGTH} characters")
    signed = compute_hello_sign_bytes(chain_id, request.endpoint, request.nonce)
    if not is_valid_signature(PublicKey(request.public_key), signed, Signature(request.signature)):
        raise HelloError("bad signature")
    if not request.endpoint:
        return  # a dial-back: it only asks who we are
    try:
        check_host_port(Path("hello"), "endpoint", request.endpoint)
    except ConfigError as error:
        raise HelloError(str(error)) from None


def is_valid_answer(
    response: pb.HelloResponse, chain_id: ChainId, nonce: bytes, node_id: Address | None
) -> bool:
    """True when ``response`` answers our Hello with ``nonce`` for ``chain_id``, signed by the
    key of ``node_id`` (any key when None)."""
    if response.chain_id != chain_id or not is_valid_public_key(response.public_key):
        return False
    public_key = PublicKey(response.public_key)
    address = compute_address(public_key)
    if address != response.node_id or (node_id is not None and address != node_id):
        return False
    signed = compute_answer_sign_bytes(chain_id, nonce)
    return is_valid_signature(public_key, signed, Signature(response.signature))


def compute_now_ms() -> int:
    """This node's clock in Unix milliseconds, as signed fetches carry and are checked by."""
    return int(time.time() * 1000)


def make_fetch_request(
    key: PrivateKey, chain_id: ChainId, weights_hash: bytes, time_ms: int
) -> pb.FetchWeightsRequest:
    """A weights fetch signed by ``key``."""
    return pb.FetchWeightsRequest(
        weights_hash=weights_hash,
        public_key=key.public_key,
        time_ms=time_ms,
        chain_id=chain_id,
        signature=key.sign(compute_fetch_sign_bytes(chain_id, weights_hash, time_ms)),
    )


def get_fetch_signer(
    request: pb.FetchWeightsRequest, chain_id: ChainId, now_ms: int
) -> Address | None:
    """The address that signed ``request`` (None when unsigned); FetchRefused when a signature
    is there but does not check, is for another chain, or is stale."""
    if not request.public_key and not request.signature:
        return None
    if request.chain_id != chain_id:
        raise FetchRefused(f"fetch is for chain {request.chain_id!r}")
    if abs(request.time_ms - now_ms) > FETCH_CLOCK_SKEW_MS:
        raise FetchRefused("fetch time is more than five minutes from this node's clock")
    if not is_valid_public_key(request.public_key):
        raise FetchRefused("public_key is not an Ed25519 key")
    public_key = PublicKey(request.public_key)
    signed = compute_fetch_sign_bytes(chain_id, request.weights_hash, request.time_ms)
    if not is_valid_signature(public_key, signed, Signature(request.signature)):
        raise FetchRefused("bad signature")
    return compute_address(public_key)
