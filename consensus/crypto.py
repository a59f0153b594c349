"""Ed25519 keys, signatures and addresses.

Keys and signing go through ``cryptography``; verification through libsodium (PyNaCl), which
verifies an Ed25519 signature in about half the time here and releases the GIL while it does,
so that catch-up can verify commits on both cores. Both implement RFC 8032 and reject
non-canonical signatures; every node runs the same one, so validity never differs between nodes.
"""

from __future__ import annotations

import hashlib

import nacl.bindings
import nacl.exceptions
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from learnchain.consensus.types import (
    ADDRESS_LENGTH,
    PUBLIC_KEY_LENGTH,
    SEED_LENGTH,
    SIGNATURE_LENGTH,
    Address,
    Hash,
    PublicKey,
    Signature,
)


def compute_hash(data: bytes) -> Hash:
    """SHA-256 of ``data``."""
    return Hash(hashlib.sha256(data).digest())


def compute_address(public_key: PublicKey) -> Address:
    """A validator's or account's address: the first 20 bytes of SHA-256 of its public key."""
    return Address(hashlib.sha256(public_key).digest()[:ADDRESS_LENGTH])


class PrivateKey:
    """An Ed25519 signing key."""

    __slots__ = ("_key", "address", "public_key")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key = PublicKey(key.public_key().public_bytes_raw())
        self.address = compute_address(self.public_key)

    @staticmethod
    def generate() -> PrivateKey:
        """A fresh random key."""
        return PrivateKey(Ed25519PrivateKey.generate())

    @staticmethod
    def from_seed(seed: bytes) -> PrivateKey:
        """The key whose 32-byte seed is ``seed`` (deterministic; for tests and simulations)."""
        if len(seed) != SEED_LENGTH:
            raise ValueError("an Ed25519 seed is 32 bytes")
        return PrivateKey(Ed25519PrivateKey.from_private_bytes(seed))

    def seed_bytes(self) -> bytes:
        """The raw 32-byte seed, for the node's key file."""
        return self._key.private_bytes_raw()

    def sign(self, message: bytes) -> Signature:
        """Sign ``message``."""
        return Signature(self._key.sign(message))


def is_valid_public_key(public_key: bytes) -> bool:
    """True when ``public_key`` decodes as an Ed25519 point."""
    if len(public_key) != PUBLIC_KEY_LENGTH:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError:
        return False
    return True


def is_valid_signature(public_key: PublicKey, message: bytes, signature: Signature) -> bool:
    """True when ``signature`` is ``public_key``'s Ed25519 signature of ``message``."""
    if len(signature) != SIGNATURE_LENGTH or len(public_key) != PUBLIC_KEY_LENGTH:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
        return False
    return True


def compute_valid_signatures(
    triples: list[tuple[PublicKey, bytes, Signature]],
) -> list[tuple[PublicKey, bytes, Signature]]:
    """The (key, message, signature) triples whose signature is valid."""
    return [t for t in triples if is_valid_signature(*t)]


# Each remembered signature costs about 120 bytes (a 32-byte digest and its dict slot), so a full
# cache is about 6 MB: some 150 heights of 100 validators' votes, proposals and contributions.
# Keyed by the triples themselves, 200,000 of them held 81 MB (their messages and signatures) and
# made a node's memory grow for its first ~15,000 heights (bench/README.md, "Memory over time").
SIGNATURE_CACHE_ENTRIES = 50_000


def compute_signature_key(public_key: PublicKey, message: bytes, signature: Signature) -> bytes:
    """A 32-byte digest naming one (key, message, signature) triple of the fixed key and
    signature lengths (which make the split of the hashed bytes unambiguous)."""
    return hashlib.sha256(public_key + signature + message).digest()


class SignatureVerifier:
    """Verifies signatures, remembering the ones already found valid.

    A node sees the same vote many times (gossip, commits, catch-up); a simulation of N nodes in one
    process sees each vote N times. Each distinct (key, message, signature) is verified once with
    real Ed25519; ``verifications`` counts those, ``checks`` counts every question asked. The
    cache holds digests of the triples, not the triples, and forgets the oldest beyond
    ``capacity``.
    """

    __slots__ = ("_valid", "capacity", "checks", "verifications")

    def __init__(self, capacity: int = SIGNATURE_CACHE_ENTRIES) -> None:
        self._valid: dict[bytes, None] = {}
        self.capacity = capacity
        self.checks = 0
        self.verifications = 0

    @property
    def remembered(self) -> int:
        """How many valid triples the cache holds."""
        return len(self._valid)

    def _remember(self, key: bytes) -> None:
        if len(self._valid) >= self.capacity:
            self._valid.pop(next(iter(self._valid)))
        self._valid[key] = None

    def remember(self, verified: list[tuple[PublicKey, bytes, Signature]]) -> None:
        """Record (key, message, signature) triples already verified elsewhere (e.g. in a worker
        thread, with ``compute_valid_signatures``), so that checking them again is a lookup."""
        for public_key, message, signature in verified:
            self._remember(compute_signature_key(public_key, message, signature))

    def is_valid(self, public_key: PublicKey, message: bytes, signature: Signature) -> bool:
        """True when ``signature`` is valid (from the cache when it was seen before)."""
        self.checks += 1
        if len(public_key) != PUBLIC_KEY_LENGTH or len(signature) != SIGNATURE_LENGTH:
            return False
        key = compute_signature_key(public_key, message, signature)
        if key in self._valid:
            return True
        self.verifications += 1
        if not is_valid_signature(public_key, message, signature):
            return False
        self._remember(key)
        return True
