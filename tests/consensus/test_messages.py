"""Sign bytes: a commit signature is checked against exactly the precommit its validator signed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from learnchain.consensus.messages import Commit, CommitSig, Vote
from learnchain.consensus.types import Address, ChainId, Hash, Height, Round, Signature, VoteType

hashes = st.binary(min_size=32, max_size=32).map(Hash)
addresses = st.binary(min_size=20, max_size=20).map(Address)


@given(
    chain_id=st.text(min_size=1, max_size=40).map(ChainId),
    height=st.integers(min_value=1, max_value=2**63 - 1).map(Height),
    round_=st.integers(min_value=0, max_value=2**62).map(Round),
    block_hash=hashes,
    validator=addresses,
)
def test_a_commit_signs_the_bytes_of_its_precommit(
    chain_id: ChainId, height: Height, round_: Round, block_hash: Hash, validator: Address
) -> None:
    sig = CommitSig(validator, Signature(bytes(64)))
    commit = Commit(height, round_, block_hash, (sig,))
    vote = Vote(chain_id, VoteType.PRECOMMIT, height, round_, block_hash, validator)
    assert commit.get_sign_bytes(chain_id, sig) == vote.sign_bytes()


def test_sign_bytes_differ_by_vote_type_and_nil() -> None:
    chain, height, round_ = ChainId("c"), Height(1), Round(0)
    block, validator = Hash(bytes(range(32))), Address(bytes(20))
    precommit = Vote(chain, VoteType.PRECOMMIT, height, round_, block, validator).sign_bytes()
    prevote = Vote(chain, VoteType.PREVOTE, height, round_, block, validator).sign_bytes()
    nil = Vote(chain, VoteType.PRECOMMIT, height, round_, None, validator).sign_bytes()
    assert len({precommit, prevote, nil}) == 3
