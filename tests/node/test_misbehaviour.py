"""Byzantine behaviour for fault-injection tests: a conflicting vote is valid evidence, and an
unknown setting is a one-line configuration error."""

from __future__ import annotations

from pathlib import Path

import pytest

from learnchain.consensus.crypto import PrivateKey, is_valid_signature
from learnchain.consensus.messages import DuplicateVoteEvidence, SignedVote, Vote
from learnchain.consensus.types import ChainId, Hash, Height, Round, Signature, VoteType
from learnchain.node.chain.misbehaviour import Misbehaviour, get_misbehaviour, make_conflicting_vote
from learnchain.node.home.files import ConfigError

KEY = PrivateKey.generate()


def sign(vote: Vote) -> SignedVote:
    return SignedVote(vote, Signature(KEY.sign(vote.sign_bytes())))


@pytest.mark.parametrize("block", [None, Hash(b"\x01" * 32), Hash(b"\xee" * 32)])
def test_a_conflicting_vote_is_signed_by_the_same_key_for_another_block(
    block: Hash | None,
) -> None:
    first = sign(Vote(ChainId("c"), VoteType.PRECOMMIT, Height(3), Round(1), block, KEY.address))
    second = make_conflicting_vote(first, KEY)
    assert second.vote.block_hash != block
    assert is_valid_signature(KEY.public_key, second.vote.sign_bytes(), second.signature)
    evidence = DuplicateVoteEvidence.of(first, second)
    assert {evidence.vote_a, evidence.vote_b} == {first, second}


def test_the_setting_names_the_misbehaviour_or_none() -> None:
    assert get_misbehaviour(Path("h"), "") is None
    assert get_misbehaviour(Path("h"), "withhold") is Misbehaviour.WITHHOLD
    with pytest.raises(ConfigError, match="byzantine: must be one of equivocate, withhold"):
        get_misbehaviour(Path("h"), "lie")
