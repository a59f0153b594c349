"""One engine, driven event by event: what it signs, when, and what it refuses."""

from __future__ import annotations

from dataclasses import replace

from learnchain.consensus.crypto import PrivateKey, SignatureVerifier, compute_hash
from learnchain.consensus.engine import Engine, TimeoutConfig
from learnchain.consensus.events import (
    Action,
    Broadcast,
    CommitBlock,
    GossipTick,
    PersistSignState,
    ProposalReceived,
    Rejected,
    RequestProposal,
    RequestSync,
    RequestVerdict,
    ScheduleTimeout,
    SignState,
    TimeoutFired,
    VerdictReady,
    VoteReceived,
)
from learnchain.consensus.messages import (
    DuplicateVoteEvidence,
    Proposal,
    SignedProposal,
    SignedVote,
    Vote,
)
from learnchain.consensus.state import ChainState, build_block
from learnchain.consensus.types import NIL_ROUND, Hash, Height, Round, Signature, Step, VoteType
from learnchain.consensus.validators import compute_proposer_of_round
from tests.consensus.chain import CHAIN, Chain, make_genesis_state, make_keys

KEYS = make_keys(4)


def setup() -> tuple[ChainState, PrivateKey, PrivateKey]:
    """Genesis state, the round-0 proposer's key, and another validator's key."""
    state = make_genesis_state(KEYS)
    proposer = next(k for k in KEYS if k.address == state.validators.proposer)
    other = next(k for k in KEYS if k.address != state.validators.proposer)
    return state, proposer, other


def propose(
    state: ChainState, proposer: PrivateKey, model_hash: Hash | None = None
) -> SignedProposal:
    block, _ = build_block(
        state,
        proposer.address,
        [],
        (),
        None,
        model_hash or state.model_hash,
        (),
        SignatureVerifier(),
    )
    proposal = Proposal(CHAIN, Height(1), Round(0), block.hash, NIL_ROUND)
    return SignedProposal(proposal, Signature(proposer.sign(proposal.sign_bytes())), block)


def vote(
    key: PrivateKey, vote_type: VoteType, block_hash: Hash | None, round_: int = 0
) -> SignedVote:
    v = Vote(CHAIN, vote_type, Height(1), Round(round_), block_hash, key.address)
    return SignedVote(v, Signature(key.sign(v.sign_bytes())))


def votes_in(actions: list[Action]) -> list[Vote]:
    return [
        a.message.vote
        for a in actions
        if isinstance(a, Broadcast) and isinstance(a.message, SignedVote)
    ]


def test_the_round_zero_proposer_is_asked_for_a_value() -> None:
    state, proposer, _ = setup()
    actions = Engine(state, proposer).start()
    assert RequestProposal(Height(1), Round(0), state.model_hash) in actions


def test_a_model_update_is_prevoted_only_after_the_learner_approves() -> None:
    state, proposer, me = setup()
    engine = Engine(state, me)
    engine.start()
    signed = propose(state, proposer, compute_hash(b"new weights"))
    actions = engine.handle(ProposalReceived(signed))
    assert any(isinstance(a, RequestVerdict) and a.block.hash == signed.block.hash for a in actions)
    assert votes_in(actions) == []
    actions = engine.handle(VerdictReady(Height(1), signed.block.hash, approved=True))
    assert [(v.vote_type, v.block_hash) for v in votes_in(actions)] == [
        (VoteType.PREVOTE, signed.block.hash)
    ]


def test_a_rejected_model_update_gets_a_nil_prevote() -> None:
    state, proposer, me = setup()
    engine = Engine(state, me)
    engine.start()
    signed = propose(state, proposer, compute_hash(b"poisoned weights"))
    engine.handle(ProposalReceived(signed))
    actions = engine.handle(VerdictReady(Height(1), signed.block.hash, approved=False))
    assert [(v.vote_type, v.block_hash) for v in votes_in(actions)] == [(VoteType.PREVOTE, None)]


def test_a_block_that_keeps_the_model_needs_no_verdict() -> None:
    state, proposer, me = setup()
    engine = Engine(state, me)
    engine.start()
    signed = propose(state, proposer)
    actions = engine.handle(ProposalReceived(signed))
    assert not any(isinstance(a, RequestVerdict) for a in actions)
    assert [v.block_hash for v in votes_in(actions)] == [signed.block.hash]


def test_the_sign_state_is_persisted_before_every_signature_leaves() -> None:
    state, proposer, me = setup()
    engine = Engine(state, me)
    engine.start()
    signed = propose(state, proposer)
    actions = engine.handle(ProposalReceived(signed))
    for other in KEYS:
        if other is not me:
            actions += engine.handle(VoteReceived(vote(other, VoteType.PREVOTE, signed.block.hash)))
    sends = [i for i, a in enumerate(actions) if isinstance(a, Broadcast)]
    assert len(sends) == 2  # prevote and precommit
    for i in sends:
        assert isinstance(actions[i - 1], PersistSignState)
        persisted = actions[i - 1].sign_state  # type: ignore[union-attr]
        message = actions[i].message  # type: ignore[union-attr]
        assert isinstance(message, SignedVote)
        assert (persisted.height, persisted.round) == (message.vote.height, message.vote.round)


def test_a_restarted_validator_never_signs_at_or_behind_its_last_signature() -> None:
    state, proposer, me = setup()
    persisted = SignState(Height(1), Round(0), Step.PREVOTE, NIL_ROUND, None)
    engine = Engine(state, me, sign_state=persisted)
    engine.start()
    actions = engine.handle(ProposalReceived(propose(state, proposer)))
    actions += engine.handle(TimeoutFired(Height(1), Round(0), Step.PROPOSE))
    assert votes_in(actions) == []


def test_a_restarted_validator_keeps_its_lock() -> None:
    state, _, me = setup()
    locked = compute_hash(b"the block it precommitted")
    persisted = SignState(Height(1), Round(0), Step.PRECOMMIT, Round(0), locked)
    engine = Engine(state, me, sign_state=persisted)
    engine.start()
    assert (engine.locked_round, engine.locked_block_hash) == (Round(0), locked)


def test_a_quorum_of_precommits_commits_the_block() -> None:
    state, proposer, me = setup()
    engine = Engine(state, me)
    engine.start()
    signed = propose(state, proposer)
    actions = engine.handle(ProposalReceived(signed))
    for other in KEYS:
        if other is not me:
            actions += engine.handle(VoteReceived(vote(other, VoteType.PREVOTE, signed.block.hash)))
    commits = []
    for other in [k for k in KEYS if k is not me][:2]:
        commits += [
            a
            for a in engine.handle(VoteReceived(vote(other, VoteType.PRECOMMIT, signed.block.hash)))
            if isinstance(a, CommitBlock)
        ]
    assert len(commits) == 1
    assert commits[0].block.hash == signed.block.hash
    assert len(commits[0].commit.signatures) == 3  # own precommit and two others: 3/4 > 2/3
    assert engine.height == 2


def test_two_of_four_precommits_do_not_commit_at_two_thirds() -> None:
    state, proposer, me = setup()
    engine = Engine(state, me)
    engine.start()
    signed = propose(state, proposer)
    engine.handle(ProposalReceived(signed))
    others = [k for k in KEYS if k is not me]
    actions = engine.handle(VoteReceived(vote(others[0], VoteType.PRECOMMIT, signed.block.hash)))
    assert not any(isinstance(a, CommitBlock) for a in actions)
    assert engine.height == 1


def test_conflicting_votes_become_evidence() -> None:
    state, _, me = setup()
    engine = Engine(state, me)
    engine.start()
    liar = next(k for k in KEYS if k is not me)
    engine.handle(VoteReceived(vote(liar, VoteType.PREVOTE, compute_hash(b"a"))))
    actions = engine.handle(VoteReceived(vote(liar, VoteType.PREVOTE, None)))
    evidence = [
        a.message
        for a in actions
        if isinstance(a, Broadcast) and isinstance(a.message, DuplicateVoteEvidence)
    ]
    assert len(evidence) == 1 and evidence[0].validator == liar.address
    assert evidence[0].hash() in engine.pending_evidence


def test_a_wrongly_signed_vote_is_rejected_and_changes_nothing() -> None:
    state, _, me = setup()
    engine = Engine(state, me)
    engine.start()
    other = next(k for k in KEYS if k is not me)
    forged = replace(vote(other, VoteType.PREVOTE, None), signature=Signature(bytes(64)))
    actions = engine.handle(VoteReceived(forged))
    assert actions == [Rejected("vote with an invalid signature")]
    assert engine._votes.get(VoteType.PREVOTE, Round(0)).power_any == 0


def test_a_proposal_from_the_wrong_proposer_is_rejected() -> None:
    state, proposer, me = setup()
    engine = Engine(state, me)
    engine.start()
    impostor = next(k for k in KEYS if k is not me and k is not proposer)
    signed = propose(state, impostor)
    actions = engine.handle(ProposalReceived(signed))
    assert actions == [Rejected("proposal not signed by the round's proposer")]
    assert votes_in(actions) == []


def test_a_vote_for_another_chain_is_rejected() -> None:
    state, _, me = setup()
    engine = Engine(state, me)
    engine.start()
    other = next(k for k in KEYS if k is not me)
    v = Vote(CHAIN + "-other", VoteType.PREVOTE, Height(1), Round(0), None, other.address)  # type: ignore[arg-type]
    actions = engine.handle(VoteReceived(SignedVote(v, Signature(other.sign(v.sign_bytes())))))
    assert isinstance(actions[0], Rejected)


def test_no_proposal_in_time_gives_a_nil_prevote() -> None:
    state, _, me = setup()
    engine = Engine(state, me)
    engine.start()
    actions = engine.handle(TimeoutFired(Height(1), Round(0), Step.PROPOSE))
    assert [(v.vote_type, v.block_hash) for v in votes_in(actions)] == [(VoteType.PREVOTE, None)]


def test_a_full_node_follows_but_never_signs() -> None:
    state, proposer, _ = setup()
    engine = Engine(state, PrivateKey.generate())
    engine.start()
    signed = propose(state, proposer)
    actions = engine.handle(ProposalReceived(signed))
    for other in KEYS:
        actions += engine.handle(VoteReceived(vote(other, VoteType.PRECOMMIT, signed.block.hash)))
    assert votes_in(actions) == []
    assert engine.height == 2


def test_a_restarted_validator_resumes_at_the_round_it_last_signed_in() -> None:
    state, _, me = setup()
    persisted = SignState(Height(1), Round(3), Step.PREVOTE, NIL_ROUND, None)
    engine = Engine(state, me, sign_state=persisted)
    engine.start()
    assert engine.round == 3
    actions = engine.handle(TimeoutFired(Height(1), Round(3), Step.PROPOSE))
    assert votes_in(actions) == []  # it prevoted in round 3 before the crash
    for other in KEYS:
        if other is not me:
            actions += engine.handle(VoteReceived(vote(other, VoteType.PREVOTE, None, round_=3)))
    assert [(v.vote_type, v.round) for v in votes_in(actions)] == [(VoteType.PRECOMMIT, 3)]


def test_a_restarted_validator_gossips_again_what_it_signed_before_the_crash() -> None:
    state, proposer, me = setup()
    engine = Engine(state, me)
    engine.start()
    before = engine.handle(ProposalReceived(propose(state, proposer)))
    prevote = votes_in(before)[0]
    restarted = Engine(state, me, sign_state=engine.sign_state)
    actions = restarted.start()
    assert prevote in votes_in(actions)  # the same signed vote, not a new signature
    assert restarted.step == Step.PREVOTE
    assert restarted._votes.get(VoteType.PREVOTE, Round(0)).power_any > 0


def test_a_node_that_hears_from_far_ahead_asks_to_sync_on_every_gossip_tick() -> None:
    # Regression: a full node whose first sync ended short of the tip (it synced from a peer
    # that was itself behind) asked only once per height and round, and stayed behind forever.
    state, _, other = setup()
    engine = Engine(state, PrivateKey.generate())
    engine.start()
    ahead = Vote(CHAIN, VoteType.PREVOTE, Height(5), Round(0), None, other.address)
    first = engine.handle(
        VoteReceived(SignedVote(ahead, Signature(other.sign(ahead.sign_bytes()))))
    )
    assert [a.from_height for a in first if isinstance(a, RequestSync)] == [1]
    for _ in range(2):
        again = engine.handle(GossipTick(Height(1), Round(0)))
        assert [a.from_height for a in again if isinstance(a, RequestSync)] == [1]


def test_a_node_that_hears_nothing_asks_peers_for_its_height_on_every_gossip_tick() -> None:
    # Regression: a validator that was syncing while its height's votes went by heard nothing
    # more (the others waited, silent, for its proposal at the next height) until a whole
    # propose timeout later.
    state, _, _ = setup()
    engine = Engine(state, PrivateKey.generate())
    engine.start()
    for _ in range(2):
        tick = engine.handle(GossipTick(Height(1), Round(0)))
        assert [a.from_height for a in tick if isinstance(a, RequestSync)] == [1]
    assert not [
        a for a in engine.handle(GossipTick(Height(1), Round(3))) if isinstance(a, RequestSync)
    ]  # a tick of a round already over asks nothing


def propose_timeouts(actions: list[Action]) -> list[int]:
    return [a.delay for a in actions if isinstance(a, ScheduleTimeout) and a.step == Step.PROPOSE]


def start_after_a_commit_without(absent: bool) -> list[Action]:
    """An engine at height 2 whose round-0 proposer did (or did not) sign the last commit."""
    chain = Chain(make_genesis_state(KEYS), KEYS)
    chain.advance()
    state, commit = chain.state, chain.last_commit
    assert commit is not None
    proposer = state.validators.proposer
    if absent:
        commit = replace(
            commit, signatures=tuple(s for s in commit.signatures if s.validator != proposer)
        )
    me = next(k for k in KEYS if k.address != proposer)
    engine = Engine(state, me, TimeoutConfig(propose=3000, propose_absent=1000))
    engine.restore_last_commit(commit)
    return engine.start()


def test_a_proposer_absent_from_the_last_commit_is_waited_for_less() -> None:
    assert propose_timeouts(start_after_a_commit_without(absent=True)) == [1000]
    assert propose_timeouts(start_after_a_commit_without(absent=False)) == [3000]


def test_a_proposer_heard_from_this_height_gets_the_full_timeout_in_later_rounds() -> None:
    chain = Chain(make_genesis_state(KEYS), KEYS)
    chain.advance()
    state, commit = chain.state, chain.last_commit
    assert commit is not None
    round1 = compute_proposer_of_round(state.validators, Round(1))  # absent from the commit...
    commit = replace(
        commit, signatures=tuple(s for s in commit.signatures if s.validator != round1)
    )
    me = next(k for k in KEYS if k.address not in (round1, state.validators.proposer))
    engine = Engine(state, me, TimeoutConfig(propose=3000, propose_delta=500, propose_absent=1000))
    engine.restore_last_commit(commit)
    engine.start()
    voter = next(k for k in KEYS if k.address == round1)  # ...but its round-0 prevote arrives
    v = Vote(CHAIN, VoteType.PREVOTE, Height(2), Round(0), None, voter.address)
    engine.handle(VoteReceived(SignedVote(v, Signature(voter.sign(v.sign_bytes())))))
    actions = engine.handle(TimeoutFired(Height(2), Round(0), Step.PROPOSE))
    actions += engine.handle(TimeoutFired(Height(2), Round(0), Step.PREVOTE))
    actions += engine.handle(TimeoutFired(Height(2), Round(0), Step.PRECOMMIT))
    assert propose_timeouts(actions) == [3500]
