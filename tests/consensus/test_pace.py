"""The pace of a height before its first round (docs/protocol.md §2.2.1) and the verdict's wait
(§2.4): a decision is followed by the commit wait; without empty blocks the engine waits for work,
a transaction, evidence or a validator's message; a pending verdict extends the propose step up
to the genesis verdict timeout; a precommit for an update carries the validator's score."""

from __future__ import annotations

from dataclasses import replace

from learnchain.consensus.crypto import PrivateKey, compute_hash
from learnchain.consensus.engine import Engine, Phase, TimeoutConfig
from learnchain.consensus.events import (
    Action,
    AwaitWork,
    CommitBlock,
    CommitWaitOver,
    ProposalReceived,
    RequestProposal,
    RequestVerdict,
    ScheduleCommitWait,
    ScheduleTimeout,
    TimeoutFired,
    VerdictReady,
    VoteReceived,
    WorkReady,
)
from learnchain.consensus.state import ChainState
from learnchain.consensus.types import Height, Round, Step, VoteType
from tests.consensus.chain import make_genesis_state, with_params
from tests.consensus.test_engine import KEYS, propose, setup, vote, votes_in

PACED = TimeoutConfig(commit=1000)


def phase(engine: Engine) -> Phase:
    return engine.phase


def decide_first_block(engine: Engine, proposer: PrivateKey, state: ChainState) -> list[Action]:
    """Feed a proposal and a quorum of precommits; the actions after the decision."""
    signed = propose(state, proposer)
    engine.handle(ProposalReceived(signed))
    actions: list[Action] = []
    for key in KEYS[:3]:
        actions = engine.handle(VoteReceived(vote(key, VoteType.PRECOMMIT, signed.block.hash)))
        if any(isinstance(a, CommitBlock) for a in actions):
            return actions
    raise AssertionError("no decision")


def test_a_decision_is_followed_by_the_commit_wait_before_round_zero() -> None:
    state, proposer, other = setup()
    engine = Engine(state, other, PACED)
    engine.start()
    actions = decide_first_block(engine, proposer, state)
    assert ScheduleCommitWait(Height(2), 1000) in actions  # type: ignore[arg-type]
    assert phase(engine) == Phase.COMMIT_WAIT
    assert not any(isinstance(a, ScheduleTimeout) for a in actions), "no round yet"
    after = engine.handle(CommitWaitOver(Height(2)))
    assert phase(engine) == Phase.ROUNDS
    assert any(isinstance(a, ScheduleTimeout) and a.step == Step.PROPOSE for a in after)


def test_without_empty_blocks_round_zero_waits_for_work() -> None:
    state, proposer, _ = setup()
    engine = Engine(state, proposer, TimeoutConfig(commit=0), wait_for_work=True)
    actions = engine.start()
    assert AwaitWork(Height(1)) in actions
    assert not any(isinstance(a, RequestProposal) for a in actions), "nothing to propose"
    assert phase(engine) == Phase.WORK_WAIT
    woken = engine.handle(WorkReady(Height(1)))
    assert any(isinstance(a, RequestProposal) for a in woken)
    assert phase(engine) == Phase.ROUNDS


def test_a_validators_message_of_the_height_starts_round_zero_too() -> None:
    state, proposer, other = setup()
    engine = Engine(state, other, TimeoutConfig(commit=0), wait_for_work=True)
    engine.start()
    signed = propose(state, proposer)
    actions = engine.handle(ProposalReceived(signed))
    assert phase(engine) == Phase.ROUNDS
    assert [v.block_hash for v in votes_in(actions)] == [signed.block.hash], "prevoted at once"


def test_a_waiting_engine_still_decides_a_block_the_others_commit() -> None:
    state, proposer, other = setup()
    engine = Engine(state, other, TimeoutConfig(commit=0), wait_for_work=True)
    engine.start()
    actions = decide_first_block(engine, proposer, state)
    assert any(isinstance(a, CommitBlock) for a in actions)


def test_a_pending_verdict_extends_the_propose_step_up_to_the_verdict_timeout() -> None:
    state = make_genesis_state(KEYS, params=with_params(verdict_timeout=20_000))
    proposer = next(k for k in KEYS if k.address == state.validators.proposer)
    other = next(k for k in KEYS if k.address != state.validators.proposer)
    engine = Engine(state, other, TimeoutConfig(commit=0, propose=3000))
    engine.start()
    signed = propose(state, proposer, compute_hash(b"big model"))
    asked = engine.handle(ProposalReceived(signed))
    assert any(isinstance(a, RequestVerdict) for a in asked)
    fired = engine.handle(TimeoutFired(Height(1), Round(0), Step.PROPOSE))
    assert votes_in(fired) == [], "still scoring: no nil prevote yet"
    assert ScheduleTimeout(Height(1), Round(0), Step.PROPOSE, 17_000) in fired  # type: ignore[arg-type]
    judged = engine.handle(VerdictReady(Height(1), signed.block.hash, True, 912_000))
    assert [v.block_hash for v in votes_in(judged)] == [signed.block.hash]


def test_a_verdict_that_never_comes_ends_in_a_nil_prevote_at_the_verdict_timeout() -> None:
    state, proposer, other = setup()
    engine = Engine(state, other, TimeoutConfig(commit=0))
    engine.start()
    engine.handle(ProposalReceived(propose(state, proposer, compute_hash(b"withheld"))))
    engine.handle(TimeoutFired(Height(1), Round(0), Step.PROPOSE))
    final = engine.handle(TimeoutFired(Height(1), Round(0), Step.PROPOSE))
    assert [v.block_hash for v in votes_in(final)] == [None]


def test_a_precommit_for_an_update_carries_the_validators_score() -> None:
    state, proposer, other = setup()
    engine = Engine(state, other, TimeoutConfig(commit=0))
    engine.start()
    signed = propose(state, proposer, compute_hash(b"update"))
    engine.handle(ProposalReceived(signed))
    engine.handle(VerdictReady(Height(1), signed.block.hash, True, 912_000))
    actions: list[Action] = []
    for key in KEYS:
        if key is not other:
            actions += engine.handle(VoteReceived(vote(key, VoteType.PREVOTE, signed.block.hash)))
    (precommit,) = [v for v in votes_in(actions) if v.vote_type == VoteType.PRECOMMIT]
    assert precommit.block_hash == signed.block.hash and precommit.score == 912_000


def test_a_node_whose_learner_needs_longer_waits_its_own_learning_budget_for_a_verdict() -> None:
    state = make_genesis_state(KEYS, params=with_params(verdict_timeout=20_000))
    proposer = next(k for k in KEYS if k.address == state.validators.proposer)
    other = next(k for k in KEYS if k.address != state.validators.proposer)
    engine = Engine(state, other, TimeoutConfig(commit=0, propose=3000))
    engine.set_learning_budget(90_000)  # a large model: its learner measured ~30 s a verdict
    engine.start()
    engine.handle(ProposalReceived(propose(state, proposer, compute_hash(b"a 500 MB model"))))
    fired = engine.handle(TimeoutFired(Height(1), Round(0), Step.PROPOSE))
    assert ScheduleTimeout(Height(1), Round(0), Step.PROPOSE, 87_000) in fired  # type: ignore[arg-type]
    engine.set_learning_budget(1_000)  # never shorter than the genesis's
    assert max(engine.learning_budget, state.params.verdict_timeout) == 20_000


def test_while_the_model_may_change_a_proposal_is_waited_for_the_learning_budget() -> None:
    """A proposer aggregates a large model for about as long as a validator takes to judge one;
    waiting only the 3 s propose timeout failed every round of a 500 MB model."""
    state, _, other = setup()
    engine = Engine(state, other, TimeoutConfig(commit=0, propose=3000))
    engine.set_learning_budget(40_000)
    started = engine.start()
    assert ScheduleTimeout(Height(1), Round(0), Step.PROPOSE, 40_000) in started  # type: ignore[arg-type]
    ended = replace(state, params=replace(state.params, training_heights=1), height=Height(1))
    quiet = Engine(ended, other, TimeoutConfig(commit=0, propose=3000))
    quiet.set_learning_budget(40_000)
    assert not quiet.is_model_height(), "height 2 is past the training budget"
    assert ScheduleTimeout(Height(2), Round(0), Step.PROPOSE, 3000) in quiet.start()  # type: ignore[arg-type]
