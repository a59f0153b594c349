"""Protobuf round trips, and malformed messages refused with a clear reason."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from learnchain.consensus.crypto import compute_hash
from learnchain.consensus.events import SignState
from learnchain.consensus.incentives import PendingShare
from learnchain.consensus.messages import (
    Block,
    DuplicateVoteEvidence,
    Proposal,
    RejectedProposal,
    SignedProposal,
    SignedVote,
    TxKind,
    Vote,
)
from learnchain.consensus.types import NIL_ROUND, Height, Round, Signature, Step, Tokens, VoteType
from learnchain.proto import learnchain_pb2 as pb
from learnchain.proto import wire
from tests.consensus.chain import (
    CHAIN,
    Chain,
    contribute,
    make_genesis_state,
    make_keys,
    sign_tx,
    with_params,
)

KEYS = make_keys(4)


def busy_chain() -> tuple[Chain, list[Block]]:
    users = make_keys(2, seed=5)
    chain = Chain(make_genesis_state(KEYS, accounts=[(u, 1000) for u in users]), KEYS)
    chain.advance()
    votes = []
    for block_hash in (compute_hash(b"a"), None):
        v = Vote(CHAIN, VoteType.PREVOTE, Height(1), Round(0), block_hash, KEYS[2].address)
        votes.append(SignedVote(v, Signature(KEYS[2].sign(v.sign_bytes()))))
    evidence = DuplicateVoteEvidence.of(*votes)
    txs = [
        sign_tx(users[0], TxKind.TRANSFER, 0, amount=Tokens(5), recipient=users[1].address),
        sign_tx(
            users[1],
            TxKind.STAKE,
            0,
            amount=Tokens(150),
            endpoint="10.1.2.3:26656",
            moniker="org-b",
        ),
    ]
    block = chain.next_block(
        txs,
        model_hash=compute_hash(b"m1"),
        evidence=(evidence,),
        rejections=(rejection_of_round_0(chain),),
    )
    return chain, [block]


def rejection_of_round_0(chain: Chain) -> RejectedProposal:
    """Proof that every other validator rejected round 0's proposal of the next height."""
    proposer = next(k for k in KEYS if k.address == chain.state.validators.proposer)
    height = Height(chain.state.height + 1)
    proposal = Proposal(CHAIN, height, Round(0), compute_hash(b"poisoned"), NIL_ROUND)
    prevotes = []
    for key in sorted((k for k in KEYS if k is not proposer), key=lambda k: k.address):
        vote = Vote(
            CHAIN,
            VoteType.PREVOTE,
            height,
            Round(0),
            None,
            key.address,
            rejects=proposal.block_hash,
        )
        prevotes.append(SignedVote(vote, Signature(key.sign(vote.sign_bytes()))))
    signature = Signature(proposer.sign(proposal.sign_bytes()))
    return RejectedProposal(proposal, signature, tuple(prevotes))


def test_a_block_with_everything_round_trips() -> None:
    _, (block,) = busy_chain()
    decoded = wire.block_from_proto(
        pb.Block.FromString(wire.block_to_proto(block).SerializeToString())
    )
    assert decoded == block and decoded.hash == block.hash
    assert len(decoded.txs) == 2 and len(decoded.evidence) == 1 and decoded.last_commit is not None
    assert len(decoded.rejections) == 1 and decoded.rejections[0].prevotes[0].vote.rejects


def test_a_block_with_aggregated_and_screened_out_contributions_round_trips() -> None:
    chain = Chain(make_genesis_state(KEYS, params=with_params()), KEYS)
    made = contribute(chain, KEYS)
    block = chain.next_block(
        model_hash=compute_hash(b"aggregate"), contributions=made[:2], screened=made[2:]
    )
    decoded = wire.block_from_proto(
        pb.Block.FromString(wire.block_to_proto(block).SerializeToString())
    )
    assert decoded == block and decoded.screened == made[2:]
    waiting = replace(
        chain.state,
        pending_share=PendingShare(
            Height(1), (KEYS[0].address,), Tokens(9), screened=(KEYS[2].address,)
        ),
    )
    decoded_state = wire.state_from_proto(wire.state_to_proto(waiting))
    assert decoded_state == waiting
    assert decoded_state.compute_root() == waiting.compute_root()


def test_only_a_nil_prevote_names_a_rejected_block() -> None:
    for vote_type, block_hash in (
        (VoteType.PREVOTE, compute_hash(b"b")),
        (VoteType.PRECOMMIT, None),
    ):
        v = Vote(
            CHAIN,
            vote_type,
            Height(1),
            Round(0),
            block_hash,
            KEYS[0].address,
            rejects=compute_hash(b"bad"),
        )
        message = wire.vote_to_proto(SignedVote(v, Signature(KEYS[0].sign(v.sign_bytes()))))
        with pytest.raises(wire.WireError, match="only a nil prevote names a rejected block"):
            wire.vote_from_proto(message)


def test_a_proposal_round_trips() -> None:
    _, (block,) = busy_chain()
    proposal = Proposal(CHAIN, block.height, Round(3), block.hash, Round(1))
    signed = SignedProposal(proposal, Signature(KEYS[0].sign(proposal.sign_bytes())), block)
    assert wire.proposal_from_proto(wire.proposal_to_proto(signed)) == signed


def test_the_chain_state_round_trips_with_the_same_root() -> None:
    chain, (block,) = busy_chain()
    state = chain.commit(block)
    decoded = wire.state_from_proto(
        pb.ChainState.FromString(wire.state_to_proto(state).SerializeToString())
    )
    assert decoded.compute_root() == state.compute_root()
    assert any(bond.moniker == "org-b" for bond in decoded.bonds.values())
    assert decoded.slashed == state.slashed and decoded.slashed
    waiting = replace(
        state, pending_share=PendingShare(Height(1), (KEYS[0].address, KEYS[1].address), Tokens(9))
    )
    assert wire.state_from_proto(wire.state_to_proto(waiting)) == waiting


def test_the_sign_state_round_trips() -> None:
    for s in (
        SignState(Height(7), Round(2), Step.PRECOMMIT, Round(1), compute_hash(b"x")),
        SignState(Height(0), NIL_ROUND, Step.PROPOSE, NIL_ROUND, None),
    ):
        assert wire.sign_state_from_proto(wire.sign_state_to_proto(s)) == s


@given(
    vote_type=st.sampled_from([VoteType.PREVOTE, VoteType.PRECOMMIT]),
    height=st.integers(0, 2**40),
    round_=st.integers(0, 1000),
    nil=st.booleans(),
)
def test_any_vote_round_trips(vote_type: VoteType, height: int, round_: int, nil: bool) -> None:
    v = Vote(
        CHAIN,
        vote_type,
        Height(height),
        Round(round_),
        None if nil else compute_hash(b"b"),
        KEYS[0].address,
    )
    signed = SignedVote(v, Signature(bytes(64)))
    assert wire.vote_from_proto(wire.vote_to_proto(signed)) == signed


def test_a_precommits_contribution_values_round_trip_in_votes_commits_and_state() -> None:
    v = Vote(
        CHAIN,
        VoteType.PRECOMMIT,
        Height(1),
        Round(0),
        compute_hash(b"b"),
        KEYS[0].address,
        None,
        values=(12, -3_000_000, 0),
    )
    signed = SignedVote(v, Signature(bytes(64)))
    assert wire.vote_from_proto(wire.vote_to_proto(signed)).vote.values == (12, -3_000_000, 0)
    chain, (block,) = busy_chain()
    chain.commit(block, values={k.address: (5, -5) for k in KEYS})
    assert chain.last_commit is not None
    decoded = wire.commit_from_proto(wire.commit_to_proto(chain.last_commit))
    assert decoded == chain.last_commit and decoded.signatures[0].values == (5, -5)


def test_contribution_values_out_of_range_or_on_a_prevote_are_refused() -> None:
    prevote = good_vote()
    prevote.values.append(1)
    with pytest.raises(wire.WireError, match="only a precommit for a block carries contribution"):
        wire.vote_from_proto(prevote)
    huge = good_vote()
    huge.vote_type = int(VoteType.PRECOMMIT)
    huge.values.append(10**16)
    with pytest.raises(wire.WireError, match=r"contribution value .* is out of range"):
        wire.vote_from_proto(huge)


def good_vote() -> pb.Vote:
    v = Vote(CHAIN, VoteType.PREVOTE, Height(1), Round(0), compute_hash(b"b"), KEYS[0].address)
    return wire.vote_to_proto(SignedVote(v, Signature(KEYS[0].sign(v.sign_bytes()))))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"vote_type": 9}, "unknown vote type 9"),
        ({"block_hash": b"short"}, "vote block hash must be 32 bytes"),
        ({"validator": b"\x01" * 19}, "vote validator must be 20 bytes"),
        ({"signature": b""}, "signature must be 64 bytes"),
        ({"chain_id": ""}, "chain id must be 1 to 64 characters"),
        ({"chain_id": "x" * 65}, "chain id must be 1 to 64 characters"),
        ({"round": -1}, "round -1 is out of range"),
        ({"round": 1 << 30}, "out of range"),
    ],
)
def test_a_malformed_vote_is_refused(change: dict[str, object], message: str) -> None:
    bad = good_vote()
    for field, value in change.items():
        setattr(bad, field, value)
    with pytest.raises(wire.WireError, match=message):
        wire.vote_from_proto(bad)


def test_malformed_blocks_transactions_and_proposals_are_refused() -> None:
    _, (block,) = busy_chain()
    message = wire.block_to_proto(block)
    message.txs[0].kind = 42
    with pytest.raises(wire.WireError, match="unknown transaction kind 42"):
        wire.block_from_proto(message)
    named = wire.block_to_proto(block)
    named.txs[1].moniker = "m" * 65
    with pytest.raises(wire.WireError, match="moniker is at most 64 printable characters"):
        wire.block_from_proto(named)
    with pytest.raises(wire.WireError, match="block has no header"):
        wire.block_from_proto(pb.Block())
    with pytest.raises(wire.WireError, match="proposal carries no block"):
        wire.proposal_from_proto(
            pb.Proposal(chain_id=CHAIN, block_hash=bytes(32), signature=bytes(64))
        )
    header = wire.block_to_proto(block)
    header.header.state_root = b"\x00"
    with pytest.raises(wire.WireError, match="state root must be 32 bytes"):
        wire.block_from_proto(header)
    with pytest.raises(wire.WireError, match="evidence needs two votes"):
        wire.evidence_from_proto(pb.Evidence(vote_a=good_vote()))


def test_a_decoded_block_with_a_changed_field_has_another_hash() -> None:
    _, (block,) = busy_chain()
    message = wire.block_to_proto(block)
    message.header.height += 1
    assert wire.block_from_proto(message).hash != block.hash
    assert replace(block).hash == block.hash


def test_reputations_and_their_decay_round_trip_with_the_same_root() -> None:
    chain, (block,) = busy_chain()
    state = chain.commit(block)
    kept = replace(
        state,
        params=replace(state.params, reputation_decay=950_000),
        reputations={KEYS[0].address: -708_800, KEYS[1].address: 52_667},
    )
    decoded = wire.state_from_proto(
        pb.ChainState.FromString(wire.state_to_proto(kept).SerializeToString())
    )
    assert decoded == kept and decoded.compute_root() == kept.compute_root()
    assert decoded.compute_root() != state.compute_root()


def test_upgrade_signals_and_plans_round_trip_in_transactions_and_state() -> None:
    from learnchain.consensus.messages import TxKind
    from learnchain.consensus.upgrades import UpgradePlan
    from tests.consensus.chain import sign_tx

    plan = UpgradePlan("v0.3-store", Height(40))
    signed = sign_tx(KEYS[0], TxKind.UPGRADE, 0, upgrade=plan)
    assert wire.tx_from_proto(wire.tx_to_proto(signed)) == signed
    chain, (block,) = busy_chain()
    state = replace(chain.commit(block), upgrade_signals={KEYS[1].address: plan}, upgrade_plan=plan)
    decoded = wire.state_from_proto(
        pb.ChainState.FromString(wire.state_to_proto(state).SerializeToString())
    )
    assert decoded == state and decoded.compute_root() == state.compute_root()
    malformed = wire.tx_to_proto(signed)
    malformed.upgrade.name = "Not A Name"
    with pytest.raises(wire.WireError, match="upgrade name is at most 64 lower-case"):
        wire.tx_from_proto(malformed)
