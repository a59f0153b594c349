"""Incentives (docs/protocol.md §3.5): the contributors' share of a model update's reward is
settled by the next block in proportion to each contribution's appraised value; a contribution
that validators holding more than the threshold of stake find harmful forfeits a deposit from its
author's bond to the useful ones; tokens are conserved."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learnchain.consensus.crypto import compute_hash
from learnchain.consensus.incentives import (
    Appraisal,
    PendingShare,
    compute_appraisal,
    compute_settlement,
)
from learnchain.consensus.messages import Commit, CommitSig, is_body_consistent
from learnchain.consensus.params import ChainParams
from learnchain.consensus.state import InvalidBlock, get_total_tokens
from learnchain.consensus.types import Address, Height, Round, Signature, Threshold, Tokens
from tests.consensus.chain import Chain, contribute, make_genesis_state, make_keys, with_params

KEYS = make_keys(4)
A, B, C, D = (k.address for k in KEYS)
PARAMS = with_params(contribution_deposit=Tokens(10), forfeit_margin=5_000)


def appraised(*values: int, harmful: tuple[int, ...] = ()) -> Appraisal:
    return Appraisal(values, tuple(i in harmful for i in range(len(values))))


def pending(*contributors: Address, pool: int = 100) -> PendingShare:
    return PendingShare(Height(1), contributors, Tokens(pool))


def commit_with(values: dict[Address, tuple[int, ...]]) -> Commit:
    sigs = tuple(
        CommitSig(address, Signature(bytes(64)), None, values=valued)
        for address, valued in sorted(values.items())
    )
    return Commit(Height(1), Round(0), compute_hash(b"block"), sigs)


def make_validators(*stakes: int):  # type: ignore[no-untyped-def]
    return make_genesis_state(KEYS, stakes=[100 * s for s in stakes]).validators


# --- appraisal ---------------------------------------------------------------------------------


def test_a_contributions_value_is_the_stake_weighted_median_of_the_reports() -> None:
    validators = make_validators(1, 1, 1, 5)
    commit = commit_with({A: (10, -3), B: (20, -2), C: (30, -1), D: (-50, 40)})
    appraisal = compute_appraisal(commit, validators, 2, PARAMS)
    assert appraisal is not None and appraisal.values == (-50, 40)
    even = compute_appraisal(commit, make_validators(1, 1, 1, 1), 2, PARAMS)
    assert even is not None and even.values == (10, -2)


def test_harm_needs_reports_from_more_than_the_threshold_of_stake() -> None:
    validators = make_validators(1, 1, 1, 1)
    three = commit_with({A: (-9_000, 0), B: (-9_000, 0), C: (-9_000, -9_000), D: (1, -9_000)})
    appraisal = compute_appraisal(three, validators, 2, PARAMS)
    assert appraisal is not None and appraisal.harmful == (True, False), "3 of 4 > 2/3; 2 of 4 not"
    shallow = commit_with({A: (-4_000,), B: (-4_000,), C: (-4_000,), D: (-4_000,)})
    appraisal = compute_appraisal(shallow, validators, 1, PARAMS)
    assert appraisal is not None and appraisal.harmful == (False,), "within the forfeit margin"
    half = compute_appraisal(
        three, validators, 2, with_params(threshold=Threshold(1, 2), forfeit_margin=5_000)
    )
    assert half is not None and half.harmful == (True, False), "2 of 4 is not more than 1/2"


def test_values_from_half_of_the_stake_or_less_are_not_appraised() -> None:
    validators = make_validators(1, 1, 1, 1)
    assert compute_appraisal(commit_with({A: (1,), B: (2,)}), validators, 1, PARAMS) is None
    assert compute_appraisal(commit_with({A: (1,), B: (2,), C: (3,)}), validators, 1, PARAMS)


def test_reports_of_the_wrong_length_do_not_count() -> None:
    validators = make_validators(1, 1, 1, 1)
    commit = commit_with({A: (1, 2), B: (1,), C: (1, 2, 3), D: ()})
    assert compute_appraisal(commit, validators, 2, PARAMS) is None


# --- settlement --------------------------------------------------------------------------------


def test_the_share_is_paid_in_proportion_to_positive_values() -> None:
    settled = compute_settlement(pending(A, B, C), appraised(30_000, 10_000, 0), {}, PARAMS)
    assert settled.rewards == {A: 75, B: 25}
    assert settled.forfeits == {} and settled.transfers == {} and settled.burned == 0


def test_a_harmful_contribution_earns_nothing_even_with_a_positive_median() -> None:
    settled = compute_settlement(
        pending(A, B), appraised(5_000, 5_000, harmful=(1,)), {A: 100, B: 100}, PARAMS
    )
    assert settled.rewards == {A: 100} and settled.forfeits == {B: 10}


def test_an_untrained_copy_of_the_model_earns_nothing_and_loses_nothing() -> None:
    settled = compute_settlement(pending(A, B), appraised(20_000, -1_000), {A: 100, B: 100}, PARAMS)
    assert B not in settled.rewards and B not in settled.forfeits


def test_a_harmful_contribution_forfeits_its_deposit_to_the_useful_ones() -> None:
    bonded = {A: 100, B: 100, C: 100}
    settled = compute_settlement(
        pending(A, B, C), appraised(30_000, 10_000, -40_000, harmful=(2,)), bonded, PARAMS
    )
    assert settled.forfeits == {C: 10}
    assert settled.transfers == {A: 7, B: 2}
    assert settled.burned == 1  # rounding down leaves a token nobody earned


def test_a_forfeit_is_at_most_what_is_bonded_and_is_burned_when_nobody_was_useful() -> None:
    settled = compute_settlement(pending(A, B), appraised(-9_000, 0, harmful=(0,)), {A: 4}, PARAMS)
    assert settled.forfeits == {A: 4} and settled.burned == 4
    assert settled.rewards == {} and settled.transfers == {}


def test_a_harmful_screened_out_contribution_forfeits_its_deposit_to_the_useful_ones() -> None:
    share = replace(pending(A, B), screened=(C, D))
    settled = compute_settlement(
        share, appraised(30_000, 10_000, -40_000, 0, harmful=(2,)), {C: 100, D: 100}, PARAMS
    )
    assert settled.forfeits == {C: 10}, "harmful by the validators: the deposit goes"
    assert settled.rewards == {A: 75, B: 25}, "screened-out contributions share no reward"
    assert settled.transfers == {A: 7, B: 2}


def test_a_screened_out_contribution_the_validators_value_earns_nothing_and_loses_nothing() -> None:
    share = replace(pending(A), screened=(B,))
    settled = compute_settlement(share, appraised(10_000, 20_000), {B: 100}, PARAMS)
    assert settled.rewards == {A: 100} and settled.forfeits == {}


def test_unmeasured_contributions_share_equally_as_before() -> None:
    settled = compute_settlement(pending(A, B, C, pool=10), None, {}, PARAMS)
    assert settled.rewards == {A: 3, B: 3, C: 3} and settled.forfeits == {}


def test_a_rejected_proposers_deposit_goes_to_the_useful_contributions_by_value() -> None:
    share = replace(pending(A, B, C), rejected=(D,))
    settled = compute_settlement(share, appraised(30_000, 10_000, 0), {D: 100}, PARAMS)
    assert settled.forfeits == {D: 10}
    assert settled.transfers == {A: 7, B: 2} and settled.burned == 1  # C added nothing


def test_a_rejected_proposer_is_paid_none_of_its_deposit_and_unappraised_shares_are_equal() -> None:
    share = replace(pending(A, B, C), rejected=(C, C))
    settled = compute_settlement(share, None, {C: 15}, PARAMS)
    assert settled.forfeits == {C: 15}  # two deposits, at most what is bonded
    assert settled.transfers == {A: 7, B: 7} and settled.burned == 1


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.integers(-(10**6), 10**6), min_size=1, max_size=4),
    harmful=st.lists(st.booleans(), min_size=4, max_size=4),
    bonds=st.lists(st.integers(0, 50), min_size=4, max_size=4),
    pool=st.integers(0, 1000),
    deposit=st.integers(0, 20),
    rejected=st.lists(st.sampled_from((A, B, C, D)), max_size=3),
)
def test_a_settlement_pays_out_no_more_than_the_pool_and_the_forfeits(
    values: list[int],
    harmful: list[bool],
    bonds: list[int],
    pool: int,
    deposit: int,
    rejected: list[Address],
) -> None:
    contributors = (A, B, C, D)[: len(values)]
    bonded = dict(zip((A, B, C, D), bonds, strict=True))
    params = replace(
        ChainParams(), contribution_deposit=Tokens(deposit), proposal_deposit=Tokens(deposit)
    )
    appraisal = Appraisal(tuple(values), tuple(harmful[: len(values)]))
    share = replace(pending(*contributors, pool=pool), rejected=tuple(rejected))
    settled = compute_settlement(share, appraisal, bonded, params)
    assert settled.minted <= pool
    assert sum(settled.transfers.values()) + settled.burned == sum(settled.forfeits.values())
    for address, value, bad in zip(contributors, values, harmful, strict=False):
        assert (address in settled.rewards or address in settled.transfers) <= (
            value > 0 and not bad
        )
        assert address not in settled.transfers or address not in rejected
    for address in (A, B, C, D):
        owed = deposit * (
            rejected.count(address)
            + (address in contributors and harmful[(A, B, C, D).index(address)])
        )
        assert settled.forfeits.get(address, 0) == min(owed, bonded[address])


# --- on chain ----------------------------------------------------------------------------------


def rewarding_chain() -> Chain:
    """Four validators; a model update mints 100, 20 of them to its proposer at once."""
    params = with_params(block_reward=Tokens(100), proposer_reward_percent=20, forfeit_margin=5_000)
    return Chain(make_genesis_state(KEYS, params=params), KEYS)


def test_the_next_block_settles_the_contributors_share_by_the_values_in_its_last_commit() -> None:
    chain = rewarding_chain()
    before = get_total_tokens(chain.state)
    bonded_before = chain.state.bonds[C].bonded
    proposer = chain.state.validators.proposer
    block = chain.next_block(
        model_hash=compute_hash(b"aggregate"), contributions=contribute(chain, KEYS[:3])
    )
    values: dict[Address, tuple[int, ...]] = {k.address: (30_000, 10_000, -40_000) for k in KEYS}
    chain.commit(block, values=values)
    assert chain.state.get_account(proposer).balance == 20, "the proposer is paid at once"
    assert chain.state.pending_share is not None and chain.state.pending_share.pool == 80
    assert get_total_tokens(chain.state) == before + 20
    chain.advance()
    assert chain.state.pending_share is None
    assert chain.state.bonds[C].bonded == bonded_before - 10
    balances = {a: chain.state.get_account(a).balance for a in (A, B, C)}
    expected = {A: 60 + 7, B: 20 + 2, C: 0}  # rewards 3:1 of 80, forfeit 10 split 3:1
    assert {a: b - (20 if a == proposer else 0) for a, b in balances.items()} == expected
    assert get_total_tokens(chain.state) == before + 20 + 80 - 1  # one forfeited token burned


def test_a_harmful_screened_out_contribution_in_a_block_forfeits_at_the_next_one() -> None:
    chain = rewarding_chain()
    before = get_total_tokens(chain.state)
    bonded_before = chain.state.bonds[D].bonded
    listed, screened = contribute(chain, KEYS[:3]), contribute(chain, KEYS[3:])
    block = chain.next_block(
        model_hash=compute_hash(b"aggregate"), contributions=listed, screened=screened
    )
    assert block.screened == screened
    chain.commit(block, values={k.address: (20_000, 10_000, 10_000, -40_000) for k in KEYS})
    assert chain.state.pending_share is not None
    assert chain.state.pending_share.screened == (D,)
    chain.advance()
    assert chain.state.bonds[D].bonded == bonded_before - 10
    proposer_share = 20 if block.header.proposer == D else 0
    assert chain.state.get_account(D).balance == proposer_share, "no reward when screened out"
    assert get_total_tokens(chain.state) == before + 100 - 1  # 10 forfeited 5:2:2, 1 burned


@pytest.mark.parametrize(
    ("listed", "screened", "error"),
    [
        ((), (3,), "screened-out contributions without an aggregate"),
        ((0, 1), (1,), "two contributions from one validator"),
    ],
)
def test_screened_out_contributions_are_checked_like_the_aggregated_ones(
    listed: tuple[int, ...], screened: tuple[int, ...], error: str
) -> None:
    chain = Chain(make_genesis_state(KEYS, params=with_params()), KEYS)
    made = contribute(chain, KEYS)
    with pytest.raises(InvalidBlock, match=error):
        chain.next_block(
            model_hash=compute_hash(b"aggregate"),
            contributions=tuple(made[i] for i in listed),
            screened=tuple(made[i] for i in screened),
        )


def test_the_header_commits_to_the_screened_out_contributions() -> None:
    chain = Chain(make_genesis_state(KEYS, params=with_params()), KEYS)
    made = contribute(chain, KEYS)
    block = chain.next_block(
        model_hash=compute_hash(b"aggregate"), contributions=made[:3], screened=made[3:]
    )
    assert is_body_consistent(block)
    assert not is_body_consistent(replace(block, screened=()))
    assert not is_body_consistent(replace(block, contributions=made, screened=()))


def test_contribution_values_are_signed_with_the_precommit() -> None:
    chain = Chain(make_genesis_state(KEYS), KEYS)
    block = chain.next_block(model_hash=compute_hash(b"aggregate"))
    chain.commit(block, values={k.address: (1,) for k in KEYS})
    commit = chain.last_commit
    assert commit is not None
    forged = tuple(replace(s, values=(999_999,)) for s in commit.signatures)
    chain.last_commit = replace(commit, signatures=forged)
    try:
        chain.advance()
    except ValueError as error:
        assert "last commit" in str(error)
    else:
        raise AssertionError("a forged value was accepted")
