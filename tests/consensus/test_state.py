"""The chain state transition: accounts, staking, rewards, slashing, validator-set changes."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learnchain.consensus.crypto import PrivateKey, SignatureVerifier, compute_hash
from learnchain.consensus.messages import DuplicateVoteEvidence, SignedVote, TxKind, Vote
from learnchain.consensus.state import InvalidBlock, get_total_tokens, process_block
from learnchain.consensus.types import Height, Round, Signature, Tokens, VoteType
from tests.consensus.chain import (
    CHAIN,
    Chain,
    make_genesis_state,
    make_keys,
    sign_tx,
    with_forced_txs,
    with_params,
)


def make_chain(balances: int = 1000, **params: object) -> tuple[Chain, list[PrivateKey]]:
    keys = make_keys(4)
    users = make_keys(3, seed=99)
    state = make_genesis_state(
        keys, accounts=[(k, balances) for k in keys + users], params=with_params(**params)
    )
    chain = Chain(state, keys)
    chain.signers = keys + users  # whoever is a validator at a height signs its commit
    return chain, users


def test_transfer_moves_tokens_and_bumps_the_nonce() -> None:
    chain, (alice, bob, _) = make_chain()
    state = chain.advance(
        [sign_tx(alice, TxKind.TRANSFER, 0, amount=Tokens(300), recipient=bob.address)]
    )
    assert state.get_account(alice.address).balance == 700
    assert state.get_account(alice.address).nonce == 1
    assert state.get_account(bob.address).balance == 1300


@pytest.mark.parametrize(
    "make_bad",
    [
        pytest.param(
            lambda a, b: sign_tx(a, TxKind.TRANSFER, 0, amount=Tokens(5000), recipient=b.address),
            id="overdraft",
        ),
        pytest.param(
            lambda a, b: sign_tx(a, TxKind.TRANSFER, 7, amount=Tokens(5), recipient=b.address),
            id="wrong-nonce",
        ),
        pytest.param(
            lambda a, b: replace(
                sign_tx(a, TxKind.TRANSFER, 0, amount=Tokens(5), recipient=b.address),
                signature=Signature(bytes(64)),
            ),
            id="bad-signature",
        ),
        pytest.param(
            lambda a, b: replace(
                sign_tx(a, TxKind.TRANSFER, 0, amount=Tokens(5), recipient=b.address),
                tx=replace(
                    sign_tx(a, TxKind.TRANSFER, 0, amount=Tokens(5), recipient=b.address).tx,
                    amount=Tokens(6),
                ),
            ),
            id="tampered-amount",
        ),
        pytest.param(
            lambda a, b: sign_tx(b, TxKind.UNSTAKE, 0, amount=Tokens(1)), id="unstake-without-bond"
        ),
        pytest.param(
            lambda a, b: sign_tx(a, TxKind.STAKE, 0, amount=Tokens(10)), id="stake-below-minimum"
        ),
        pytest.param(lambda a, b: sign_tx(a, TxKind.UNJAIL, 0), id="unjail-when-not-jailed"),
        pytest.param(
            lambda a, b: sign_tx(a, TxKind.STAKE, 0, amount=Tokens(200), moniker="x" * 65),
            id="moniker-too-long",
        ),
        pytest.param(
            lambda a, b: sign_tx(a, TxKind.STAKE, 0, amount=Tokens(200), moniker="a\nb"),
            id="moniker-not-printable",
        ),
    ],
)
def test_a_bad_transaction_is_left_out_and_changes_nothing(make_bad: object) -> None:
    chain, (alice, bob, _) = make_chain()
    bad = make_bad(alice, bob)  # type: ignore[operator]
    before = chain.state
    block = chain.next_block([bad])
    assert block.txs == ()
    forced = with_forced_txs(block, (bad,))
    with pytest.raises(InvalidBlock, match="invalid transaction"):
        process_block(before, forced, SignatureVerifier())
    assert chain.state is before
    assert before.get_account(alice.address).balance == 1000


def test_a_replayed_transaction_is_rejected() -> None:
    chain, (alice, bob, _) = make_chain()
    tx = sign_tx(alice, TxKind.TRANSFER, 0, amount=Tokens(10), recipient=bob.address)
    chain.advance([tx])
    assert chain.next_block([tx]).txs == ()


def test_stake_joins_the_validator_set_two_heights_later() -> None:
    chain, (alice, _, _) = make_chain()
    state = chain.advance(
        [sign_tx(alice, TxKind.STAKE, 0, amount=Tokens(200), endpoint="10.0.0.9:26656")]
    )
    committed_at = state.height
    assert state.bonds[alice.address].bonded == 200
    assert state.get_account(alice.address).balance == 800
    assert state.validators.get_validator(alice.address) is None  # height H+1
    assert state.next_validators.get_power(alice.address) == 200  # height H+2
    state = chain.advance()
    assert state.height == committed_at + 1
    assert state.validators.get_power(alice.address) == 200


def test_a_stake_names_its_validator_and_a_later_stake_keeps_or_renames_it() -> None:
    chain, (alice, _, _) = make_chain()
    state = chain.advance([sign_tx(alice, TxKind.STAKE, 0, amount=Tokens(200), moniker="org-a")])
    assert state.bonds[alice.address].moniker == "org-a"
    state = chain.advance([sign_tx(alice, TxKind.STAKE, 1, amount=Tokens(10))])
    assert state.bonds[alice.address].moniker == "org-a", "no moniker: the old one stays"
    state = chain.advance([sign_tx(alice, TxKind.STAKE, 2, amount=Tokens(10), moniker="org-b")])
    assert state.bonds[alice.address].moniker == "org-b"


def test_a_bond_without_a_moniker_encodes_as_before_monikers_existed() -> None:
    from learnchain.consensus.state import Bond

    bond = Bond(PrivateKey.from_seed(bytes(32)).public_key, Tokens(100), "h:1")
    named = replace(bond, moniker="org")
    assert named.encode().startswith(bond.encode()) and named.encode() != bond.encode()


def test_unstake_returns_tokens_after_the_unbonding_period() -> None:
    chain, _ = make_chain(unbonding_blocks=3)
    validator = chain.keys[0]
    state = chain.advance([sign_tx(validator, TxKind.UNSTAKE, 0, amount=Tokens(100))])
    assert validator.address not in state.bonds
    assert state.next_validators.get_validator(validator.address) is None
    assert state.get_account(validator.address).balance == 1000
    for _ in range(3):
        state = chain.advance()
    assert state.get_account(validator.address).balance == 1100
    assert state.unbonding == ()


def test_a_validator_below_min_stake_drops_out() -> None:
    chain, _ = make_chain()
    state = chain.advance([sign_tx(chain.keys[0], TxKind.UNSTAKE, 0, amount=Tokens(50))])
    assert state.bonds[chain.keys[0].address].bonded == 50
    assert state.next_validators.get_validator(chain.keys[0].address) is None


def test_a_model_update_rewards_its_proposer() -> None:
    chain, _ = make_chain(block_reward=Tokens(10), mode="solo")
    proposer = chain.state.validators.proposer
    before = get_total_tokens(chain.state)
    state = chain.advance(model_hash=compute_hash(b"better model"))
    assert state.get_account(proposer).balance == 1010
    assert get_total_tokens(state) == before + 10
    assert state.model_hash == compute_hash(b"better model")


def test_after_the_training_budget_the_model_no_longer_changes() -> None:
    chain, _ = make_chain(mode="solo", training_heights=2)
    chain.advance(model_hash=compute_hash(b"update 1"))
    chain.advance(model_hash=compute_hash(b"update 2"))
    with pytest.raises(InvalidBlock, match="training ended at height 2"):
        process_block(
            chain.state, chain.next_block(model_hash=compute_hash(b"update 3")), chain.verifier
        )
    state = chain.advance()  # blocks without an update keep the chain going
    assert state.height == 3 and state.model_hash == compute_hash(b"update 2")


def test_a_block_without_a_model_update_mints_nothing() -> None:
    chain, _ = make_chain()
    before = get_total_tokens(chain.state)
    assert get_total_tokens(chain.advance()) == before


def _equivocation(key, height: int) -> DuplicateVoteEvidence:  # type: ignore[no-untyped-def]
    votes = []
    for block_hash in (compute_hash(b"a"), None):
        vote = Vote(CHAIN, VoteType.PREVOTE, Height(height), Round(0), block_hash, key.address)
        votes.append(SignedVote(vote, Signature(key.sign(vote.sign_bytes()))))
    return DuplicateVoteEvidence.of(votes[0], votes[1])


def test_double_signing_is_slashed_and_jailed_once() -> None:
    chain, _ = make_chain(slash_double_sign_percent=5)
    chain.advance()
    offender = chain.keys[1]
    evidence = _equivocation(offender, 1)
    before = get_total_tokens(chain.state)
    state = chain.advance(evidence=(evidence,))
    bond = state.bonds[offender.address]
    assert bond.bonded == 95 and bond.jailed
    assert get_total_tokens(state) == before - 5
    assert state.next_validators.get_validator(offender.address) is None
    assert chain.next_block(evidence=(evidence,)).evidence == ()  # not slashed twice


def test_evidence_with_a_forged_vote_is_refused() -> None:
    chain, _ = make_chain()
    chain.advance()
    evidence = _equivocation(chain.keys[1], 1)
    forged = DuplicateVoteEvidence(
        evidence.vote_a, replace(evidence.vote_b, signature=Signature(bytes(64)))
    )
    assert chain.next_block(evidence=(forged,)).evidence == ()


def test_long_downtime_jails_and_unjail_brings_the_validator_back() -> None:
    chain, _ = make_chain(downtime_jail_blocks=3, jail_blocks=4, slash_downtime_percent=1)
    absent = chain.keys[3]
    online = chain.keys[:3]
    for _ in range(5):
        chain.commit(chain.next_block(), signers=online)
    bond = chain.state.bonds[absent.address]
    assert bond.jailed and bond.bonded == 99
    while chain.state.height < bond.jailed_until:
        chain.commit(chain.next_block(), signers=online)
    refused = chain.next_block([sign_tx(absent, TxKind.UNJAIL, 0)])
    assert refused.txs == ()  # a bond below min_stake cannot unjail
    top_up = sign_tx(absent, TxKind.STAKE, 0, amount=Tokens(1))
    state = chain.commit(
        chain.next_block([top_up, sign_tx(absent, TxKind.UNJAIL, 1)]), signers=online
    )
    assert not state.bonds[absent.address].jailed
    assert state.next_validators.get_power(absent.address) == 100


def test_a_block_with_a_wrong_state_root_is_invalid() -> None:
    chain, _ = make_chain()
    block = chain.next_block()
    bad = replace(block, header=replace(block.header, state_root=compute_hash(b"x")))
    with pytest.raises(InvalidBlock, match="state root"):
        process_block(chain.state, bad, SignatureVerifier())


def test_a_block_whose_last_commit_lacks_a_quorum_is_invalid() -> None:
    chain, _ = make_chain()
    chain.advance()
    assert chain.last_commit is not None
    chain.last_commit = replace(
        chain.last_commit,
        signatures=chain.last_commit.signatures[:2],
    )
    block = chain.next_block()
    with pytest.raises(InvalidBlock, match="last commit"):
        process_block(chain.state, block, SignatureVerifier())


def test_genesis_rejects_a_validator_below_min_stake() -> None:
    with pytest.raises(ValueError, match="min_stake"):
        make_genesis_state(make_keys(2), stakes=[100, 5])


def test_genesis_state_is_deterministic() -> None:
    keys = make_keys(4)
    assert make_genesis_state(keys).compute_root() == make_genesis_state(keys).compute_root()
    assert make_genesis_state(keys).compute_root() != make_genesis_state(keys[:3]).compute_root()


KINDS = {
    "transfer": TxKind.TRANSFER,
    "stake": TxKind.STAKE,
    "unstake": TxKind.UNSTAKE,
    "unjail": TxKind.UNJAIL,
}
tx_strategy = st.tuples(
    st.sampled_from([*KINDS, "evidence"]),
    st.integers(min_value=0, max_value=2),  # sender
    st.integers(min_value=0, max_value=2),  # recipient
    st.integers(min_value=0, max_value=1500),  # amount
    st.integers(min_value=-1, max_value=1),  # nonce offset (0: the expected nonce)
    st.booleans(),  # signed correctly
)


def _burned(before, block) -> int:  # type: ignore[no-untyped-def]
    """Tokens burned by double-sign slashes: a percent of each offender's bond and unbonding."""
    pct = before.params.slash_double_sign_percent
    evidence = list(block.evidence) + [t.tx.evidence for t in block.txs if t.tx.evidence]
    burned = 0
    for item in evidence:
        burned += before.bonds[item.validator].bonded * pct // 100
        burned += sum(
            u.amount * pct // 100 for u in before.unbonding if u.address == item.validator
        )
    return burned


@settings(max_examples=60, deadline=None)
@given(
    blocks=st.lists(st.lists(tx_strategy, max_size=6), min_size=1, max_size=6),
    updates=st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_tokens_are_conserved_except_rewards_and_slashes(blocks, updates) -> None:  # type: ignore[no-untyped-def]
    chain, users = make_chain(unbonding_blocks=2, block_reward=Tokens(7), mode="solo")
    actors = [chain.keys[0], *users[:2]]
    by_key = {k.public_key: k for k in actors}
    nonces = {k.address: 0 for k in actors}
    for index, block_txs in enumerate(blocks):
        txs = []
        for kind, s, r, amount, nonce_offset, signed_correctly in block_txs:
            sender = actors[s]
            nonce = max(nonces[sender.address] + nonce_offset, 0)
            if kind == "evidence":
                evidence = _equivocation(chain.keys[1], chain.state.height)
                tx = sign_tx(sender, TxKind.EVIDENCE, nonce, evidence=evidence)
            else:
                tx = sign_tx(
                    sender, KINDS[kind], nonce, amount=Tokens(amount), recipient=actors[r].address
                )
            txs.append(tx if signed_correctly else replace(tx, signature=Signature(bytes(64))))
        before = chain.state
        model = compute_hash(f"m{index}".encode()) if updates[index] else before.model_hash
        block = chain.next_block(txs, model_hash=model)
        after = chain.commit(block)
        minted = 7 if model != before.model_hash else 0
        assert get_total_tokens(after) == get_total_tokens(before) + minted - _burned(before, block)
        for included in block.txs:
            nonces[by_key[included.tx.sender].address] += 1


bad_tx_strategy = st.sampled_from(["bad-signature", "reused-nonce", "future-nonce", "overdraft"])


@settings(max_examples=40, deadline=None)
@given(kind=bad_tx_strategy, amount=st.integers(min_value=1, max_value=10**6))
def test_a_bad_transaction_is_rejected_and_changes_nothing(kind: str, amount: int) -> None:
    chain, (alice, bob, _) = make_chain()
    chain.advance([sign_tx(alice, TxKind.TRANSFER, 0, amount=Tokens(1), recipient=bob.address)])
    balance = chain.state.get_account(alice.address).balance
    if kind == "bad-signature":
        good = sign_tx(
            alice, TxKind.TRANSFER, 1, amount=Tokens(min(amount, balance)), recipient=bob.address
        )
        bad = replace(good, signature=Signature(bob.sign(good.tx.sign_bytes())))
    elif kind == "reused-nonce":
        bad = sign_tx(
            alice, TxKind.TRANSFER, 0, amount=Tokens(min(amount, balance)), recipient=bob.address
        )
    elif kind == "future-nonce":
        bad = sign_tx(
            alice, TxKind.TRANSFER, 2, amount=Tokens(min(amount, balance)), recipient=bob.address
        )
    else:
        bad = sign_tx(
            alice, TxKind.TRANSFER, 1, amount=Tokens(balance + amount), recipient=bob.address
        )
    before = chain.state
    root = before.compute_root()
    assert chain.next_block([bad]).txs == ()
    with pytest.raises(InvalidBlock, match="invalid transaction"):
        process_block(before, with_forced_txs(chain.next_block(), (bad,)), SignatureVerifier())
    assert chain.state.compute_root() == root
