"""Byzantine behaviour a validator can be told to show, for fault-injection tests only.

``byzantine = "equivocate"`` in config.toml makes a validator sign, beside each of its votes, a
second vote for something else at the same height, round and step, and gossip both (the honest
validators must turn the pair into evidence and slash it). ``byzantine = "withhold"`` makes it
drop the votes it should relay as the round's relay hub (docs/protocol.md §2.3).
"""

from __future__ import annotations

import enum
from pathlib import Path

from learnchain.consensus.crypto import PrivateKey
from learnchain.consensus.messages import SignedVote, Vote
from learnchain.consensus.types import Hash, Signature
from learnchain.node.home.files import ConfigError

_OTHER_BLOCK = Hash(b"\xee" * 32)


class Misbehaviour(enum.Enum):
    """What a byzantine validator does wrong."""

    EQUIVOCATE = "equivocate"
    WITHHOLD = "withhold"


def get_misbehaviour(home: Path, setting: str) -> Misbehaviour | None:
    """config.toml's ``byzantine`` setting (empty: an honest validator)."""
    if not setting:
        return None
    try:
        return Misbehaviour(setting)
    except ValueError:
        choices = ", ".join(m.value for m in Misbehaviour)
        raise ConfigError(
            f"{home / 'config.toml'}: byzantine: must be one of {choices}, got {setting!r}"
        ) from None


def make_conflicting_vote(signed: SignedVote, key: PrivateKey) -> SignedVote:
    """A second vote by the same validator at the same height, round and type, for another
    block (or for a block, when the first was for nil)."""
    vote = signed.vote
    other = _OTHER_BLOCK if vote.block_hash != _OTHER_BLOCK else None
    conflicting = Vote(
        vote.chain_id, vote.vote_type, vote.height, vote.round, other, vote.validator, None
    )
    return SignedVote(conflicting, Signature(key.sign(conflicting.sign_bytes())))
