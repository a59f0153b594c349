"""Domain types shared by the whole protocol."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from fractions import Fraction
from typing import NewType

Height = NewType("Height", int)
Round = NewType("Round", int)
Stake = NewType("Stake", int)
Tokens = NewType("Tokens", int)
Nonce = NewType("Nonce", int)
Address = NewType("Address", bytes)  # 20 bytes: SHA-256(public key)[:20]
Hash = NewType("Hash", bytes)  # 32 bytes: SHA-256
PublicKey = NewType("PublicKey", bytes)  # 32 raw Ed25519 bytes
Signature = NewType("Signature", bytes)  # 64 raw Ed25519 bytes
TimeMs = NewType("TimeMs", int)  # Unix time in milliseconds (BFT time, docs/protocol.md §2)
ChainId = NewType("ChainId", str)
Milliseconds = NewType("Milliseconds", int)

ADDRESS_LENGTH = 20
HASH_LENGTH = 32
PUBLIC_KEY_LENGTH = 32
SIGNATURE_LENGTH = 64
SEED_LENGTH = 32  # an Ed25519 private key's seed
MAX_ENDPOINT_LENGTH = 256  # host:port of a validator or peer
MAX_MONIKER_LENGTH = 64  # a validator's name (CometBFT's moniker, the Cosmos description's)
ZERO_HASH = Hash(bytes(HASH_LENGTH))
NIL_ROUND = Round(-1)


class VoteType(enum.IntEnum):
    """The two kinds of Tendermint votes."""

    PREVOTE = 1
    PRECOMMIT = 2


class Step(enum.IntEnum):
    """A round's steps, ordered as the double-sign guard compares them."""

    PROPOSE = 0
    PREVOTE = 1
    PRECOMMIT = 2


def compute_step_of_vote(vote_type: VoteType) -> Step:
    """The step at which a vote of this type is signed."""
    return Step.PREVOTE if vote_type == VoteType.PREVOTE else Step.PRECOMMIT


@dataclass(frozen=True, slots=True)
class Threshold:
    """The fraction of total stake that a quorum must strictly exceed (1/2 or 2/3)."""

    numerator: int
    denominator: int

    @staticmethod
    def parse(text: str) -> Threshold:
        """Read "2/3" or "1/2"; anything else is an error."""
        allowed = {"1/2": Threshold(1, 2), "2/3": Threshold(2, 3)}
        if text.strip() not in allowed:
            raise ValueError(f"threshold must be 1/2 or 2/3, got {text!r}")
        return allowed[text.strip()]

    def as_fraction(self) -> Fraction:
        """The threshold as an exact fraction."""
        return Fraction(self.numerator, self.denominator)

    def __str__(self) -> str:
        return f"{self.numerator}/{self.denominator}"


def is_quorum(stake: int, total: int, threshold: Threshold) -> bool:
    """True when ``stake`` is strictly more than ``threshold`` of ``total`` (Tendermint's 2f+1)."""
    return stake * threshold.denominator > total * threshold.numerator


def is_skip_quorum(stake: int, total: int, threshold: Threshold) -> bool:
    """True when ``stake`` is strictly more than ``1 - threshold`` of ``total`` (f+1)."""
    return stake * threshold.denominator > total * (threshold.denominator - threshold.numerator)


def is_valid_moniker(moniker: str) -> bool:
    """At most ``MAX_MONIKER_LENGTH`` printable characters (empty: none given)."""
    return len(moniker) <= MAX_MONIKER_LENGTH and moniker.isprintable()
