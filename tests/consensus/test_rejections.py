"""Deposits on rejected model updates (docs/protocol.md §3.6): a proposal that validators holding
more than the threshold of stake prevoted nil against, naming it, forfeits its proposer's deposit
to the update the height accepted; a proof that proves less changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from learnchain.consensus.crypto import PrivateKey, compute_hash
from learnchain.consensus.messages import (
    Proposal,
    RejectedProposal,
    SignedProposal,
    SignedVote,
    Vote,
)
from learnchain.consensus.rejections import (
    InvalidRejection,
    compute_forfeit,
    compute_rejection_proofs,
    get_rejected_proposer,
)
from learnchain.consensus.state import (
    InvalidBlock,
    build_block,
    get_total_tokens,
    process_block,
)
from learnchain.consensus.types import (
    NIL_ROUND,
    Address,
    Hash,
    Height,
    Round,
    Signature,
    VoteType,
)
from learnchain.consensus.validators import compute_proposer_of_round
from tests.consensus.chain import (
    CHAIN,
    Chain,
    contribute,
    make_genesis_state,
    make_keys,
    with_params,
)

KEYS = make_keys(4)
BY_ADDRESS = {k.address: k for k in KEYS}
POISON = compute_hash(b"a poisoned update's block")


def make_chain(**params: object) -> Chain:
    state = make_genesis_state(KEYS, stakes=[200] * 4, params=with_params(**params))
    return Chain(state, KEYS)


def sign_proposal(
    key: PrivateKey,
    height: int,
    round_: int,
    block_hash: Hash = POISON,
    valid_round: int = NIL_ROUND,
) -> tuple[Proposal, Signature]:
    proposal = Proposal(CHAIN, Height(height), Round(round_), block_hash, Round(valid_round))
    return proposal, Signature(key.sign(proposal.sign_bytes()))


def reject(key: PrivateKey, proposal: Proposal, rejects: Hash | None = None) -> SignedVote:
    vote = Vote(
        CHAIN,
        VoteType.PREVOTE,
        proposal.height,
        proposal.round,
        None,
        key.address,
        rejects=proposal.block_hash if rejects is None else rejects,
    )
    return SignedVote(vote, Signature(key.sign(vote.sign_bytes())))


def proof_against_round(chain: Chain, round_: int, voters: int = 3) -> RejectedProposal:
    """Round ``round_``'s proposer proposed POISON at the next height; ``voters`` rejected it."""
    height = chain.state.height + 1
    proposer = BY_ADDRESS[compute_proposer_of_round(chain.state.validators, round_)]
    proposal, signature = sign_proposal(proposer, height, round_)
    others = [k for k in KEYS if k is not proposer][:voters]
    return RejectedProposal(proposal, signature, tuple(reject(k, proposal) for k in others))


def rejected_proposer(chain: Chain, proof: RejectedProposal) -> Address:
    state = chain.state
    return get_rejected_proposer(
        proof, CHAIN, Height(state.height + 1), state.validators, state.params, chain.verifier
    )


# --- what a proof must show --------------------------------------------------------------------


def test_a_proof_names_the_proposer_of_its_round() -> None:
    chain = make_chain()
    proof = proof_against_round(chain, 1)
    assert rejected_proposer(chain, proof) == compute_proposer_of_round(chain.state.validators, 1)


def test_rejecting_stake_at_the_threshold_is_not_enough() -> None:
    chain = make_chain()  # 2/3: two of four validators hold 1/2, three hold 3/4
    with pytest.raises(InvalidRejection, match="more than the threshold"):
        rejected_proposer(chain, proof_against_round(chain, 0, voters=2))
    half = make_chain(threshold=chain.state.params.threshold.parse("1/2"))
    with pytest.raises(InvalidRejection, match="more than the threshold"):
        rejected_proposer(half, proof_against_round(half, 0, voters=2))


def test_a_proposal_signed_by_another_validator_proves_nothing() -> None:
    chain = make_chain()
    proof = proof_against_round(chain, 0)
    impostor = next(
        k for k in KEYS if k.address != compute_proposer_of_round(chain.state.validators, 0)
    )
    forged = replace(proof, signature=Signature(impostor.sign(proof.proposal.sign_bytes())))
    with pytest.raises(InvalidRejection, match="not signed by its round's proposer"):
        rejected_proposer(chain, forged)


@pytest.mark.parametrize(
    "tamper, message",
    [
        (lambda p: replace(p, prevotes=(*p.prevotes[:2], p.prevotes[0])), "listed twice"),
        (
            lambda p: replace(
                p,
                prevotes=(
                    *p.prevotes[:2],
                    reject(KEYS[3], p.proposal, rejects=compute_hash(b"another block")),
                ),
            ),
            "does not reject",
        ),
        (
            lambda p: replace(
                p,
                prevotes=(*p.prevotes[:2], replace(p.prevotes[2], signature=Signature(bytes(64)))),
            ),
            "invalid signature",
        ),
    ],
)
def test_every_prevote_in_a_proof_must_be_a_signed_rejection_of_that_proposal(
    tamper: Callable[[RejectedProposal], RejectedProposal], message: str
) -> None:
    chain = make_chain()
    proof = proof_against_round(chain, 0, voters=3)
    with pytest.raises(InvalidRejection, match=message):
        rejected_proposer(chain, tamper(proof))


def test_a_re_proposal_or_another_height_proves_nothing() -> None:
    chain = make_chain()
    proposer = BY_ADDRESS[compute_proposer_of_round(chain.state.validators, 1)]
    reproposal, signature = sign_proposal(proposer, 1, 1, valid_round=0)
    votes = tuple(reject(k, reproposal) for k in KEYS if k is not proposer)
    with pytest.raises(InvalidRejection, match="first-time proposal"):
        rejected_proposer(chain, RejectedProposal(reproposal, signature, votes))
    later, signature = sign_proposal(proposer, 2, 1)
    votes = tuple(reject(k, later) for k in KEYS if k is not proposer)
    with pytest.raises(InvalidRejection, match="height 2"):
        rejected_proposer(chain, RejectedProposal(later, signature, votes))


# --- where the deposit goes --------------------------------------------------------------------


A, B, C, D = (k.address for k in KEYS)


def test_a_forfeit_pays_the_accepted_updates_contributors_in_equal_parts() -> None:
    forfeit = compute_forfeit(
        [A],
        {A: 200},
        10,
        True,
        B,
        [B, C, D],
    )
    assert forfeit.taken == {A: 10}
    assert forfeit.paid == {B: 3, C: 3, D: 3} and forfeit.burned == 1


def test_a_forfeit_pays_a_solo_update_to_its_proposer_and_is_burned_without_an_update() -> None:
    assert compute_forfeit([A], {A: 200}, 10, True, B, []).paid == {B: 10}
    kept = compute_forfeit([A], {A: 200}, 10, False, B, [])
    assert kept.paid == {} and kept.burned == 10


def test_a_rejected_proposer_is_paid_nothing_and_loses_at_most_its_bond() -> None:
    forfeit = compute_forfeit([A, A], {A: 15}, 10, True, A, [])
    assert forfeit.taken == {A: 15} and forfeit.paid == {} and forfeit.burned == 15


# --- in the state transition -------------------------------------------------------------------


def test_a_committed_proof_forfeits_the_deposit_to_the_accepted_update() -> None:
    chain = make_chain(mode="solo", proposal_deposit=10, block_reward=10)
    state = chain.state
    proof = proof_against_round(chain, 0)
    loser = compute_proposer_of_round(state.validators, 0)
    winner = compute_proposer_of_round(state.validators, 1)  # round 1 proposes an honest update
    block, _ = build_block(
        state, winner, [], (), None, compute_hash(b"an honest update"), (), chain.verifier, (proof,)
    )
    assert block.rejections == (proof,)
    after = chain.commit(block)
    assert after.bonds[loser].bonded == 190
    assert after.get_account(winner).balance == 10 + 10  # the block reward and the deposit
    assert get_total_tokens(after) == get_total_tokens(state) + 10  # only the reward is new


def test_in_aggregate_mode_the_deposit_goes_to_the_useful_contributions_by_value() -> None:
    chain = make_chain(block_reward=10, proposal_deposit=10, forfeit_margin=5_000)
    state = chain.state
    proof = proof_against_round(chain, 0)
    loser = compute_proposer_of_round(state.validators, 0)
    winner = compute_proposer_of_round(state.validators, 1)
    others = [k for k in KEYS if k.address != loser]
    contributions = contribute(chain, others)
    block, _ = build_block(
        state,
        winner,
        [],
        (),
        None,
        compute_hash(b"aggregate"),
        contributions,
        chain.verifier,
        (proof,),
    )
    after = chain.commit(block, values={k.address: (30_000, 10_000, 0) for k in KEYS})
    assert after.pending_share is not None and after.pending_share.rejected == (loser,)
    assert after.bonds[loser].bonded == 200  # taken when the values are in
    settled = chain.advance()
    assert settled.bonds[loser].bonded == 190
    first, second, lazy = (c.validator for c in contributions)
    paid = {
        a: settled.get_account(a).balance - after.get_account(a).balance
        for a in (first, second, lazy)
    }
    assert paid == {first: 3 + 7, second: 1 + 2, lazy: 0}  # the share 3:1 of 5, the deposit 3:1
    assert (
        get_total_tokens(settled) == get_total_tokens(state) + 5 + 4 - 1
    )  # minted 5 + 4; 1 burned


def test_a_deposit_is_burned_when_the_height_keeps_the_model() -> None:
    chain = make_chain(proposal_deposit=10)
    before = get_total_tokens(chain.state)
    after = chain.advance(rejections=(proof_against_round(chain, 0),))
    assert get_total_tokens(after) == before - 10


def test_a_block_that_proves_one_round_twice_or_a_bad_proof_is_invalid() -> None:
    chain = make_chain()
    proof = proof_against_round(chain, 0)
    block = chain.next_block(rejections=(proof,))
    twice = replace(block, rejections=(proof, proof))
    with pytest.raises(InvalidBlock):
        process_block(chain.state, twice, chain.verifier)
    weak = proof_against_round(chain, 0, voters=2)
    assert chain.next_block(rejections=(weak,)).rejections == ()  # a proposer leaves it out
    with pytest.raises(InvalidBlock):
        process_block(chain.state, replace(block, rejections=(weak,)), chain.verifier)


# --- what a proposer includes ------------------------------------------------------------------


def test_a_proposer_proves_every_earlier_round_whose_rejection_reached_the_threshold() -> None:
    chain = make_chain()
    state = chain.state
    rejected = proof_against_round(chain, 0)
    weak = proof_against_round(chain, 1, voters=2)
    proposals = {
        p.proposal.round: SignedProposal(p.proposal, p.signature, chain.next_block())
        for p in (rejected, weak)
    }
    prevotes = {Round(0): rejected.prevotes, Round(1): weak.prevotes}
    proofs = compute_rejection_proofs(
        CHAIN, proposals, prevotes, state.validators, state.params, Round(2)
    )
    assert [p.proposal.round for p in proofs] == [0]
    assert (
        compute_rejection_proofs(
            CHAIN, proposals, prevotes, state.validators, state.params, Round(0)
        )
        == ()
    )
