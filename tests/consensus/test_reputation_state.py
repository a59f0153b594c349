"""Reputation in the chain state (docs/protocol.md §3.9): precommits on a chain that keeps it
carry each contribution's reputation value after its settlement value, the next block moves the
contributors' reputations by the others' reports, the state root covers them, and a block whose
aggregate includes a contribution its author's reputation leaves out is invalid."""

from __future__ import annotations

from dataclasses import replace

import pytest

from learnchain.consensus.crypto import compute_hash
from learnchain.consensus.params import ChainParams
from learnchain.consensus.state import InvalidBlock
from learnchain.consensus.types import Address, Tokens
from tests.consensus.chain import Chain, contribute, make_genesis_state, make_keys, with_params

KEYS = make_keys(5)
A, B, C, D, E = (k.address for k in KEYS)
HALF = 500_000  # a decay of one half, in parts per million


def reputation_chain() -> Chain:
    """Five validators of equal stake that keep reputations, decaying by half a round."""
    params = with_params(block_reward=Tokens(100), reputation_decay=HALF)
    return Chain(make_genesis_state(KEYS, params=params), KEYS)


def test_the_next_block_moves_reputations_by_the_others_reports() -> None:
    chain = reputation_chain()
    block = chain.next_block(
        model_hash=compute_hash(b"aggregate"), contributions=contribute(chain, KEYS[:3])
    )
    # settlement values for A, B, C, then reputation values for A, B, C
    values: dict[Address, tuple[int, ...]] = {
        A: (5, 5, 0, 900, 40, -30),  # A rates itself highly: its own report never counts
        B: (5, 5, 0, 20, 900, -50),
        C: (5, 5, 0, 10, 30, 900),
        D: (5, 5, 0, 30, 20, -60),
        E: (5, 5, 0, -10, 10, -70),
    }
    chain.commit(block, values=values)
    assert chain.state.reputations == {}, "reputation moves when the values come on chain"
    chain.advance()
    # the others' upper third: the second highest of four equal reports
    assert chain.state.reputations == {A: 20, B: 30, C: -50}


def test_reputation_decays_from_round_to_round() -> None:
    chain = reputation_chain()
    others = {C: 500, D: 600, E: 700}  # B's -400 is within the typical magnitude, 600
    chain.state = replace(chain.state, reputations={A: 1000, B: -400, **others})
    block = chain.next_block(
        model_hash=compute_hash(b"aggregate"), contributions=contribute(chain, KEYS[:2])
    )
    chain.commit(block, values={k.address: (0, 0, 10, 10) for k in KEYS})
    chain.advance()
    assert chain.state.reputations == {A: 510, B: -190, **others}, "the others keep theirs"


def test_precommits_without_reputation_values_leave_reputations_and_split_equally() -> None:
    chain = reputation_chain()
    block = chain.next_block(
        model_hash=compute_hash(b"aggregate"), contributions=contribute(chain, KEYS[:2])
    )
    chain.commit(block, values={k.address: (30, 10) for k in KEYS})  # settlement values alone
    balances = {a: chain.state.get_account(a).balance for a in (A, B)}
    chain.advance()
    assert chain.state.reputations == {}
    paid = {a: chain.state.get_account(a).balance - balances[a] for a in (A, B)}
    assert paid == {A: 25, B: 25}, "not appraised: the share is split equally"


def test_an_aggregate_must_leave_out_the_lowest_clearly_negative_reputation() -> None:
    chain = reputation_chain()
    chain.state = replace(chain.state, reputations={A: 300, B: 250, C: 200, D: 150, E: -900})
    made = contribute(chain, KEYS)
    with pytest.raises(InvalidBlock, match="reputation leaves out"):
        chain.next_block(model_hash=compute_hash(b"aggregate"), contributions=made)
    block = chain.next_block(
        model_hash=compute_hash(b"aggregate"), contributions=made[:4], screened=made[4:]
    )
    chain.commit(block)
    assert chain.state.pending_share is not None and chain.state.pending_share.screened == (E,)


def test_exclusions_are_judged_over_the_whole_set_not_the_named_contributions() -> None:
    """A proposer cannot keep a low reputation in by naming just enough contributions for a
    quorum: D is left out because the rest of the set holds a quorum without it; E is not,
    because leaving out D and E would leave three of five."""
    chain = reputation_chain()
    chain.state = replace(chain.state, reputations={D: -900, E: -800, A: 100})
    made = contribute(chain, KEYS[2:])  # C, D and E
    with pytest.raises(InvalidBlock, match="reputation leaves out"):
        chain.next_block(model_hash=compute_hash(b"aggregate"), contributions=made)
    block = chain.next_block(
        model_hash=compute_hash(b"aggregate"), contributions=(made[0], made[2]), screened=made[1:2]
    )
    chain.commit(block)


def test_the_state_root_covers_reputations() -> None:
    state = reputation_chain().state
    assert replace(state, reputations={A: 1}).compute_root() != state.compute_root()
    assert (
        replace(state, reputations={A: 1}).compute_root()
        != replace(state, reputations={A: 2}).compute_root()
    )


def test_a_chain_without_reputation_encodes_its_params_as_before() -> None:
    assert ChainParams().encode() == replace(ChainParams(), reputation_decay=0).encode()
    assert ChainParams(reputation_decay=HALF).encode() != ChainParams().encode()


@pytest.mark.parametrize("decay", [-1, 1_000_000, 2_000_000])
def test_a_reputation_decay_out_of_range_is_a_one_line_error(decay: int) -> None:
    with pytest.raises(ValueError, match="reputation_decay must be at least 0 and below"):
        ChainParams(reputation_decay=decay).validate()
