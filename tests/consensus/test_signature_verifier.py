"""The signature cache: each valid triple is verified once, invalid ones never pass, and the
cache stays small however long the chain runs."""

from __future__ import annotations

import tracemalloc

from learnchain.consensus.crypto import PrivateKey, SignatureVerifier
from learnchain.consensus.types import PublicKey, Signature

KEY = PrivateKey.from_seed(b"\x01" * 32)


def signed(message: bytes) -> tuple[PublicKey, bytes, Signature]:
    return KEY.public_key, message, KEY.sign(message)


def test_a_valid_signature_seen_again_is_not_verified_again() -> None:
    verifier = SignatureVerifier()
    triple = signed(b"vote")
    assert verifier.is_valid(*triple) and verifier.is_valid(*triple)
    assert (verifier.checks, verifier.verifications) == (2, 1)


def test_an_invalid_signature_is_never_remembered_as_valid() -> None:
    verifier = SignatureVerifier()
    public_key, message, signature = signed(b"vote")
    forged = Signature(bytes([signature[0] ^ 1]) + signature[1:])
    assert not verifier.is_valid(public_key, message, forged)
    assert not verifier.is_valid(public_key, message, forged)
    assert not verifier.is_valid(public_key, b"another vote", signature)
    assert verifier.remembered == 0


def test_the_same_bytes_split_differently_are_not_the_remembered_triple() -> None:
    verifier = SignatureVerifier()
    public_key, message, signature = signed(b"vote")
    assert verifier.is_valid(public_key, message, signature)
    shifted_key, shifted_signature = public_key[:-1], public_key[-1:] + signature
    assert not verifier.is_valid(PublicKey(shifted_key), message, Signature(shifted_signature))


def test_triples_verified_elsewhere_are_a_lookup() -> None:
    verifier = SignatureVerifier()
    verifier.remember([signed(b"precommit")])
    assert verifier.is_valid(*signed(b"precommit"))
    assert verifier.verifications == 0


def test_the_cache_forgets_the_oldest_beyond_its_capacity() -> None:
    verifier = SignatureVerifier(capacity=3)
    triples = [signed(b"vote %d" % i) for i in range(4)]
    for triple in triples:
        verifier.is_valid(*triple)
    assert verifier.remembered == 3
    verifier.is_valid(*triples[3])
    assert verifier.verifications == 4  # the newest is still known
    verifier.is_valid(*triples[0])
    assert verifier.verifications == 5  # the oldest was forgotten


def test_a_full_cache_holds_no_message_or_signature_alive() -> None:
    """What a full cache costs does not grow with the size of what was signed."""
    verifier = SignatureVerifier(capacity=2_000)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for i in range(2_000):
            verifier.remember([signed(b"%d" % i + b"x" * 1_000)])
        grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    finally:
        tracemalloc.stop()
    assert verifier.remembered == 2_000
    assert grown < 2_000 * 200  # a digest and its slot each, not the 1 kB messages
