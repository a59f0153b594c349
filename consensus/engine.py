"""Tendermint's consensus (Buchman, Kwon, Milosevic 2018, Algorithm 1) with stake quorums.

The engine is sans-IO: ``handle(event)`` returns the actions the node must carry out, in order.
Comments ``# Alg.1 line N`` point at the paper's pseudo-code.

Quorums: "2f+1" is stake strictly above the genesis threshold (1/2 or 2/3 of the total); "f+1" is
stake strictly above 1 - threshold.

valid(v) is split in two. A block is *objectively* valid when the state transition accepts it
(signatures, proposer, heights, hashes, transactions, state root). A first-time proposal
(line 22) is prevoted only if it is objectively valid *and* this validator's learner approves its
model update (blocks that keep the model need no verdict). Every later use of valid(v) — a
re-proposal justified by an earlier polka (line 28), locking on a polka (line 36), deciding
(line 49) — is objective only: the polka is the stake-weighted ML vote, so a validator that
rejected an update still follows the quorum's decision, and liveness is Tendermint's.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import assert_never

from learnchain.consensus.crypto import PrivateKey, SignatureVerifier
from learnchain.consensus.events import (
    Action,
    AwaitWork,
    Broadcast,
    CommitBlock,
    CommitReceived,
    CommitWaitOver,
    Event,
    EvidenceReceived,
    GossipTick,
    HaltForUpgrade,
    PersistSignState,
    ProposalContent,
    ProposalReceived,
    Rejected,
    RelayVote,
    RequestProposal,
    RequestSync,
    RequestVerdict,
    ScheduleCommitWait,
    ScheduleGossip,
    ScheduleTimeout,
    SignState,
    TimeoutFired,
    VerdictReady,
    VoteReceived,
    WorkReady,
)
from learnchain.consensus.messages import (
    Block,
    Commit,
    CommitSig,
    DuplicateVoteEvidence,
    Proposal,
    SignedProposal,
    SignedVote,
    Vote,
)
from learnchain.consensus.rejections import compute_rejection_proofs
from learnchain.consensus.state import (
    ChainState,
    InvalidBlock,
    build_block,
    is_awaiting_blocks,
    is_valid_commit,
    process_block,
)
from learnchain.consensus.types import (
    NIL_ROUND,
    Address,
    Hash,
    Height,
    Milliseconds,
    Round,
    Signature,
    Stake,
    Step,
    TimeMs,
    VoteType,
    compute_step_of_vote,
    is_quorum,
    is_skip_quorum,
)
from learnchain.consensus.upgrades import is_known_upgrade, is_upgrade_due
from learnchain.consensus.validators import ValidatorSet, compute_proposer_of_round
from learnchain.consensus.votes import HeightVotes

Transition = Callable[[ChainState, Block, SignatureVerifier], ChainState]
MAX_BUFFERED_FUTURE_MESSAGES = 10_000
MAX_PENDING_EVIDENCE = 1_000


@dataclass(frozen=True, slots=True)
class TimeoutConfig:
    """Timeouts grow linearly with the round, so a slow network eventually fits inside one."""

    propose: int = 3000  # timeoutPropose(0) (Algorithm 1 line 21)
    propose_delta: int = 500  # added to propose each round
    prevote: int = 1000  # timeoutPrevote(0) (Algorithm 1 line 34)
    prevote_delta: int = 500  # added to prevote each round
    precommit: int = 1000  # timeoutPrecommit(0) (Algorithm 1 line 47)
    precommit_delta: int = 500  # added to precommit each round
    commit: int = 1000  # pause after deciding (CometBFT's timeout_commit); 0: none
    # timeoutPropose when the round's proposer is absent: it did not sign the last commit and has
    # sent nothing this height (crashed, hung, cut off), so waiting the full timeout is waste
    propose_absent: int = 1000
    gossip: int = 1000  # while a round lasts, resend own messages this often (lossy links)

    def get_timeout(self, step: Step, round_: int) -> Milliseconds:
        """timeoutPropose/Prevote/Precommit(round)."""
        base, delta = {
            Step.PROPOSE: (self.propose, self.propose_delta),
            Step.PREVOTE: (self.prevote, self.prevote_delta),
            Step.PRECOMMIT: (self.precommit, self.precommit_delta),
        }[step]
        return Milliseconds(base + delta * round_)


class Phase(enum.Enum):
    """Where a height is before and after its first round starts."""

    COMMIT_WAIT = "commit-wait"  # pausing after the last decision (timeouts.commit)
    WORK_WAIT = "work-wait"  # no empty blocks: waiting for something to decide
    ROUNDS = "rounds"  # Algorithm 1's rounds are running
    HALTED = "halted"  # an upgrade plan halts the chain here and this build lacks it


class Engine:
    """One node's consensus state machine for the height after its last committed block.

    Pacing (CometBFT's ``timeout_commit`` and ``create_empty_blocks = false``): after a decision
    the next height's round 0 starts ``timeouts.commit`` later, and with ``wait_for_work`` only
    once the node reports ``WorkReady``, pending evidence exists, or a validator's message of
    the height arrives (someone else had work: follow). Until round 0 starts, messages of the
    height are kept and counted, and a decision or a skip to a later round is still taken.
    """

    def __init__(
        self,
        state: ChainState,
        key: PrivateKey | None,
        timeouts: TimeoutConfig | None = None,
        sign_state: SignState | None = None,
        verifier: SignatureVerifier | None = None,
        transition: Transition = process_block,
        wait_for_work: bool = False,
        knows_upgrade: Callable[[str], bool] = is_known_upgrade,
    ) -> None:
        self.key = key
        self.knows_upgrade = knows_upgrade
        self.wait_for_work = wait_for_work
        self.transition = transition
        self.timeouts = timeouts or TimeoutConfig()
        self.verifier = verifier or SignatureVerifier()
        self.sign_state = sign_state or SignState(
            Height(0), NIL_ROUND, Step.PROPOSE, NIL_ROUND, None
        )
        self.pending_evidence: dict[Hash, DuplicateVoteEvidence] = {}
        self.last_commit: Commit | None = None
        self._last_commit_sigs: dict[Address, CommitSig] = {}
        self._relayed_last_commit = False  # this node relayed the votes of the last commit
        self._future: list[Event] = []
        self._sync_requested_at: tuple[int, int] = (-1, -1)
        self.now_ms = TimeMs(0)  # the shell's clock, told before each event (set_time)
        # how long this node's learner may need to judge a proposal, and a proposer to make one
        # (0: the genesis verdict_timeout, and the configured timeoutPropose)
        self.learning_budget = Milliseconds(0)
        self._reset_height(state)
        self.started = False

    def set_time(self, now_ms: int) -> None:
        """The time as the shell's clock reads it; precommits carry it (the core reads no
        clock: a simulation tells it simulated time)."""
        self.now_ms = TimeMs(now_ms)

    def set_learning_budget(self, budget_ms: int) -> None:
        """How long learning work on a model update takes here, as this node's learner measured
        it (aggregating, fetching, checking, scoring): a verdict still pending is waited for up
        to the larger of this and the genesis ``verdict_timeout``, and while the height may
        change the model a proposal is waited for at least this long (a proposer aggregates a
        large model for as long). Both are local choices of timeout, as §2.4 says: safety is
        untouched; a proposer that never proposes costs its round at most this."""
        self.learning_budget = Milliseconds(max(0, budget_ms))

    # --- accessors --------------------------------------------------------------------------

    @property
    def address(self) -> Address | None:
        """This node's validator address (None for a full node)."""
        return None if self.key is None else self.key.address

    @property
    def validators(self) -> ValidatorSet:
        """The validator set deciding the current height."""
        return self.state.validators

    def get_proposer(self, round_: int) -> Address:
        """proposer(h_p, round) of Algorithm 1."""
        proposer = self._proposers.get(round_)
        if proposer is None:
            proposer = self._proposers[round_] = compute_proposer_of_round(self.validators, round_)
        return proposer

    def is_relaying(self) -> bool:
        """True when this height's votes for blocks go through each round's proposer."""
        relay_from = self.state.params.vote_relay_from
        return relay_from > 0 and len(self.validators.validators) >= relay_from

    def is_relay_hub(self, round_: Round) -> bool:
        """True when this node relays the votes of ``round_`` (it is the round's proposer)."""
        return (
            self.key is not None
            and self.is_relaying()
            and self.get_proposer(round_) == self.key.address
        )

    def get_vote_recipient(self, vote: Vote) -> Address | None:
        """Where an own vote goes first: the round's proposer when relaying a vote for a block,
        else None (every peer). Nil votes go to every peer: a round whose proposer is silent ends
        in nil votes, and they must not depend on it. Gossip resends always go to every peer, so
        a proposer that does not relay costs a gossip interval, never liveness."""
        if vote.block_hash is None or not self.is_relaying():
            return None
        proposer = self.get_proposer(vote.round)
        return None if proposer == vote.validator else proposer

    def get_block(self, block_hash: Hash) -> Block | None:
        """A block of the current height this node has received, by hash."""
        return self._blocks.get(block_hash)

    def restore_last_commit(self, commit: Commit) -> None:
        """After a restart: the commit of the last stored block, which the next block cites."""
        self.last_commit = commit
        self._last_commit_sigs = {s.validator: s for s in commit.signatures}

    def is_validator(self) -> bool:
        """True when this node votes at the current height."""
        return self.key is not None and self.validators.get_validator(self.key.address) is not None

    # --- the event interface ----------------------------------------------------------------

    def start(self) -> list[Action]:
        """Alg.1 line 10: upon start do StartRound(0).

        A validator restarted mid-height resumes at the round it last signed in: it may not sign
        in earlier rounds again, and skipping ahead is always safe (as line 55 does).
        """
        self.started = True
        out: list[Action] = []
        if self._halt_for_upgrade(out):
            return out
        if self.sign_state.height == self.height:
            self._start_round(Round(max(self.sign_state.round, 0)), out)
            self._restore_own_messages(out)
        else:
            self._end_commit_wait(out)
        self._process_rules(out)
        return out

    def handle(self, event: Event) -> list[Action]:
        """Feed one event; returns the actions to carry out, in order."""
        out: list[Action] = []
        if self.phase == Phase.HALTED:
            return out
        match event:
            case VoteReceived():
                self._on_vote(event.vote, out)
            case ProposalReceived():
                self._on_proposal(event.proposal, out)
            case TimeoutFired():
                self._on_timeout(event, out)
            case GossipTick():
                self._on_gossip_tick(event, out)
            case VerdictReady():
                if event.height == self.height:
                    self._verdicts[event.block_hash] = event.approved
                    self._extensions[event.block_hash] = (event.score, event.values)
            case ProposalContent():
                self._on_proposal_content(event, out)
            case CommitReceived():
                self._on_commit_received(event, out)
            case EvidenceReceived():
                self._on_evidence(event.evidence, out)
            case CommitWaitOver():
                if event.height == self.height and self.phase == Phase.COMMIT_WAIT:
                    self._end_commit_wait(out)
            case WorkReady():
                if event.height == self.height:
                    self._work_ready = True
                    self._wake(out)
            case _:
                assert_never(event)
        self._process_rules(out)
        return out

    # --- height and round bookkeeping -------------------------------------------------------

    def _reset_height(self, state: ChainState) -> None:
        """Alg.1 line 52: reset locks and the message log for a new height."""
        self.state = state
        self.height = Height(state.height + 1)
        self.round = Round(0)
        self.step = Step.PROPOSE
        self.phase = Phase.COMMIT_WAIT
        self._work_ready = False
        self._gossip_round: Round | None = None
        self._verdict_waits: set[Round] = set()
        # a precommit's vote extension per verdicted block: (score, contribution values)
        self._extensions: dict[Hash, tuple[int | None, tuple[int, ...]]] = {}
        self.locked_round = NIL_ROUND
        self.locked_block_hash: Hash | None = None
        self.valid_round = NIL_ROUND
        self.valid_block: Block | None = None
        self._proposers: dict[int, Address] = {}
        self._proposals: dict[Round, SignedProposal] = {}
        self._blocks: dict[Hash, Block] = {}
        self._post_states: dict[Hash, ChainState | None] = {}
        self._verdicts: dict[Hash, bool] = {}
        self._verdicts_requested: set[Hash] = set()
        self._votes = HeightVotes()
        self._heard: set[Address] = set()  # validators with a valid message of this height
        self._own_messages: list[SignedProposal | SignedVote] = []
        self._prevote_timeout_rounds: set[Round] = set()
        self._precommit_timeout_rounds: set[Round] = set()
        self._polka_rounds: set[Round] = set()
        self._decision_candidates: set[tuple[Round, Hash]] = set()
        self._skip_candidates: set[Round] = set()
        self._awaiting_content: Round | None = None
        if self.sign_state.height == self.height:  # restarted mid-height: the lock survives
            self.locked_round = self.sign_state.locked_round
            self.locked_block_hash = self.sign_state.locked_block_hash

    def _halt_for_upgrade(self, out: list[Action]) -> bool:
        """Halt at a height an upgrade plan names when this build does not carry it: nothing
        of the height is signed or decided (consensus/upgrades.py)."""
        plan = self.state.upgrade_plan
        if plan is None or not is_upgrade_due(plan, self.height) or self.knows_upgrade(plan.name):
            return False
        self.phase = Phase.HALTED
        out.append(HaltForUpgrade(plan))
        return True

    def _enter_height(self, out: list[Action]) -> None:
        """After a decision: pause ``timeouts.commit``, then go on (``_end_commit_wait``)."""
        if self._halt_for_upgrade(out):
            return
        if self.timeouts.commit > 0:
            out.append(ScheduleCommitWait(self.height, Milliseconds(self.timeouts.commit)))
        else:
            self._end_commit_wait(out)

    def _end_commit_wait(self, out: list[Action]) -> None:
        """StartRound(0), unless there is nothing to decide yet and empty blocks are off. A
        state that needs further blocks (a validator-set change, unbonding, a last update's
        settlement: ``is_awaiting_blocks``) is work of its own, §2.2.1."""
        if self.wait_for_work and not (
            self._work_ready
            or self.pending_evidence
            or self._has_messages_of_height()
            or is_awaiting_blocks(self.state)
        ):
            self.phase = Phase.WORK_WAIT
            out.append(AwaitWork(self.height))
            # Keep asking peers for this height's block while idle: one that missed the last
            # blocks must still catch up when nothing new is proposed.
            self._schedule_gossip(out)
            return
        self._start_round(Round(0), out)

    def _has_messages_of_height(self) -> bool:
        return bool(self._proposals) or self._votes.has_any()

    def _wake(self, out: list[Action]) -> None:
        """Work arrived while waiting for it: StartRound(0)."""
        if self.phase == Phase.WORK_WAIT:
            self._start_round(Round(0), out)

    def _start_round(self, round_: Round, out: list[Action]) -> None:
        """Alg.1 lines 11-21: StartRound(round)."""
        self.phase = Phase.ROUNDS
        self.round = round_
        self.step = Step.PROPOSE
        if self.key is not None and self.get_proposer(round_) == self.key.address:
            if self.valid_block is not None:  # line 14
                self._send_proposal(self.valid_block, self.valid_round, out)
            else:  # line 17: getValue() is the node's to answer
                self._awaiting_content = round_
                out.append(RequestProposal(self.height, round_, self.state.model_hash))
        # line 21; the proposer schedules it too, in case its own proposal never materialises
        delay = self.timeouts.get_timeout(Step.PROPOSE, round_)
        if self.is_absent(self.get_proposer(round_)):
            absent = self.timeouts.propose_absent + self.timeouts.propose_delta * round_
            delay = Milliseconds(min(delay, absent))
        elif self.is_model_height():  # the proposer may be aggregating a large model
            delay = Milliseconds(max(delay, self.learning_budget))
        out.append(ScheduleTimeout(self.height, round_, Step.PROPOSE, delay))
        if self._gossip_round != round_:  # round 0's ticks may have begun while waiting for work
            self._schedule_gossip(out)

    def is_model_height(self) -> bool:
        """True when this height's block may change the model (training is on, within budget)."""
        return self.state.learning.is_training() and self.state.params.is_training_height(
            self.height
        )

    def is_absent(self, validator: Address) -> bool:
        """True when ``validator`` did not sign the last commit (as far as this node has seen
        its precommits) and has sent no valid message of this height."""
        return (
            self.last_commit is not None
            and self.state.height > 0
            and validator not in self._last_commit_sigs
            and validator not in self._heard
        )

    def _schedule_gossip(self, out: list[Action]) -> None:
        self._gossip_round = self.round
        out.append(ScheduleGossip(self.height, self.round, Milliseconds(self.timeouts.gossip)))

    def _restore_own_messages(self, out: list[Action]) -> None:
        """After a restart: count, and gossip again, what this validator signed this round."""
        for message in self.sign_state.messages:
            self._own_messages.append(message)
            out.append(Broadcast(message))
            if isinstance(message, SignedProposal):
                self._accept_proposal(message)
            else:
                power = self.validators.get_power(message.vote.validator)
                self._count_vote(message, power, out)
                self.step = max(self.step, compute_step_of_vote(message.vote.vote_type))
        if self._awaiting_content is not None and any(
            isinstance(m, SignedProposal) for m in self.sign_state.messages
        ):
            self._awaiting_content = None
            out[:] = [a for a in out if not isinstance(a, RequestProposal)]

    def _schedule_timeout(self, step: Step, out: list[Action]) -> None:
        """timeoutPropose/Prevote/Precommit(round_p) for the current height and round."""
        delay = self.timeouts.get_timeout(step, self.round)
        out.append(ScheduleTimeout(self.height, self.round, step, delay))

    # --- signing (with the double-sign guard) -----------------------------------------------

    def _may_sign(self, round_: Round, step: Step) -> bool:
        """Never sign at or behind the last signed (height, round, step)."""
        return self.is_validator() and not self.sign_state.is_behind_or_at(
            self.height, round_, step
        )

    def _record_signing(
        self, round_: Round, step: Step, message: SignedProposal | SignedVote, out: list[Action]
    ) -> None:
        """Persist the sign state, lock and this round's own messages before they leave the node.

        Like CometBFT's WAL: a validator restarted mid-round re-gossips what it signed (it may
        not sign it again), so a whole network restarted at once does not wait forever for
        votes that died with the processes.
        """
        previous = self.sign_state
        kept = (
            previous.messages if (previous.height, previous.round) == (self.height, round_) else ()
        )
        self.sign_state = SignState(
            self.height, round_, step, self.locked_round, self.locked_block_hash, (*kept, message)
        )
        out.append(PersistSignState(self.sign_state))

    def _send_proposal(self, block: Block, valid_round: Round, out: list[Action]) -> None:
        """Sign and broadcast ⟨PROPOSAL, h_p, round_p, block, validRound_p⟩."""
        assert self.key is not None
        if not self._may_sign(self.round, Step.PROPOSE):
            return
        proposal = Proposal(self.state.chain_id, self.height, self.round, block.hash, valid_round)
        signed = SignedProposal(proposal, self.key.sign(proposal.sign_bytes()), block)
        self._record_signing(self.round, Step.PROPOSE, signed, out)
        self._own_messages.append(signed)
        out.append(Broadcast(signed))
        self._accept_proposal(signed)

    def compute_vote_time(self, vote_type: VoteType, block_hash: Hash | None) -> TimeMs:
        """A precommit for a block carries this node's time, but always later than that block's
        time (CometBFT's voteTime), so the next block's median time moves forward."""
        block = None if block_hash is None else self._blocks.get(block_hash)
        if vote_type != VoteType.PRECOMMIT or block is None:
            return TimeMs(0)
        return TimeMs(max(self.now_ms, block.header.time_ms + 1))

    def _send_vote(
        self,
        vote_type: VoteType,
        block_hash: Hash | None,
        out: list[Action],
        rejects: Hash | None = None,
    ) -> None:
        """Sign and broadcast a prevote or precommit for the current round (if allowed);
        ``rejects``: on a nil prevote, the block hash of the update the learner rejected."""
        step = compute_step_of_vote(vote_type)
        if self.key is None or not self._may_sign(self.round, step):
            return
        score: int | None = None
        values: tuple[int, ...] = ()
        if vote_type == VoteType.PRECOMMIT and block_hash is not None:
            score, values = self._extensions.get(block_hash, (None, ()))
        vote = Vote(
            self.state.chain_id,
            vote_type,
            self.height,
            self.round,
            block_hash,
            self.key.address,
            score,
            self.compute_vote_time(vote_type, block_hash),
            values,
            rejects,
        )
        signed = SignedVote(vote, Signature(self.key.sign(vote.sign_bytes())))
        self._record_signing(self.round, step, signed, out)
        self._own_messages.append(signed)
        out.append(Broadcast(signed, self.get_vote_recipient(vote)))
        self._count_vote(signed, self.validators.get_power(self.key.address), out)

    # --- incoming messages ------------------------------------------------------------------

    def _buffer_future(self, event: Event, height: int, out: list[Action]) -> None:
        """Keep next-height messages for later; messages two heights ahead mean: sync now."""
        if height == self.height + 1 and len(self._future) < MAX_BUFFERED_FUTURE_MESSAGES:
            self._future.append(event)
        elif height > self.height + 1:
            self._request_sync(out)

    def _request_sync(self, out: list[Action]) -> None:
        """Ask for committed blocks from the current height (once per height and round)."""
        key = (self.height, self.round)
        if self._sync_requested_at != key:
            self._sync_requested_at = key
            out.append(RequestSync(self.height))

    def _on_vote(self, signed: SignedVote, out: list[Action]) -> None:
        vote = signed.vote
        if vote.chain_id != self.state.chain_id:
            out.append(Rejected(f"vote for chain {vote.chain_id!r}"))
            return
        if vote.rejects is not None and (
            vote.vote_type != VoteType.PREVOTE or vote.block_hash is not None
        ):
            out.append(Rejected("only a nil prevote names a rejected block"))
            return
        if vote.height == self.height - 1:
            self._on_late_precommit(signed, out)
            return
        if vote.height > self.height:
            self._buffer_future(VoteReceived(signed), vote.height, out)
            return
        if vote.height < self.height or vote.round < 0:
            return
        if self._votes.is_counted(vote):
            return  # a resend, or a relayed copy of a vote already here: nothing to verify
        validator = self.validators.get_validator(vote.validator)
        if validator is None:
            out.append(Rejected("vote from a non-validator"))
            return
        if not self.verifier.is_valid(validator.public_key, vote.sign_bytes(), signed.signature):
            out.append(Rejected("vote with an invalid signature"))
            return
        self._count_vote(signed, validator.power, out)
        if vote.block_hash is not None and self.is_relay_hub(vote.round):
            out.append(RelayVote(signed))
        self._wake(out)

    def _count_vote(self, signed: SignedVote, power: int, out: list[Action]) -> None:
        vote = signed.vote
        self._heard.add(vote.validator)
        conflict = self._votes.add(signed, Stake(power))
        if conflict is not None:
            self._record_evidence(DuplicateVoteEvidence.of(conflict, signed), out)
        total = self.validators.total_power
        threshold = self.state.params.threshold
        if vote.vote_type == VoteType.PRECOMMIT and vote.block_hash is not None:
            tally = self._votes.get(VoteType.PRECOMMIT, vote.round)
            if is_quorum(tally.get_power_for(vote.block_hash), total, threshold):
                self._decision_candidates.add((vote.round, vote.block_hash))
        if vote.round > self.round and is_skip_quorum(
            self._votes.senders_power.get(vote.round, 0), total, threshold
        ):
            self._skip_candidates.add(vote.round)

    def _on_late_precommit(self, signed: SignedVote, out: list[Action]) -> None:
        """A precommit for the block this node just decided: add it to the commit it will cite."""
        commit = self.last_commit
        vote = signed.vote
        if (
            commit is None
            or vote.vote_type != VoteType.PRECOMMIT
            or vote.round != commit.round
            or vote.block_hash != commit.block_hash
            or vote.validator in self._last_commit_sigs
        ):
            return
        validator = self.state.last_validators.get_validator(vote.validator)
        if validator is None or not self.verifier.is_valid(
            validator.public_key, vote.sign_bytes(), signed.signature
        ):
            return
        self._last_commit_sigs[vote.validator] = CommitSig(
            vote.validator, signed.signature, vote.score, vote.time_ms, vote.values
        )
        if self._relayed_last_commit:
            out.append(RelayVote(signed))

    def _on_proposal(self, signed: SignedProposal, out: list[Action]) -> None:
        proposal = signed.proposal
        if proposal.chain_id != self.state.chain_id:
            out.append(Rejected(f"proposal for chain {proposal.chain_id!r}"))
            return
        if proposal.height > self.height:
            self._buffer_future(ProposalReceived(signed), proposal.height, out)
            return
        if proposal.height < self.height or proposal.round < 0:
            return
        if proposal.round in self._proposals:
            return
        if not self.is_signed_by_round_proposer(signed):
            out.append(Rejected("proposal not signed by the round's proposer"))
            return
        if signed.block.hash != proposal.block_hash:
            out.append(Rejected("proposal's block does not match its hash"))
            return
        if not NIL_ROUND <= proposal.valid_round < proposal.round:
            out.append(Rejected("proposal's valid round is not before its round"))
            return
        self._accept_proposal(signed)
        self._wake(out)

    def is_signed_by_round_proposer(self, signed: SignedProposal) -> bool:
        """True when ``signed`` is signed by the proposer of its round at this height (the
        signature check is cached, so checking before ``handle`` costs nothing twice)."""
        proposal = signed.proposal
        if proposal.height != self.height or proposal.round < 0:
            return False
        proposer = self.validators.get_validator(self.get_proposer(proposal.round))
        assert proposer is not None
        return self.verifier.is_valid(proposer.public_key, proposal.sign_bytes(), signed.signature)

    def _accept_proposal(self, signed: SignedProposal) -> None:
        self._heard.add(signed.block.header.proposer)
        self._proposals[signed.proposal.round] = signed
        self._blocks[signed.block.hash] = signed.block

    def _on_proposal_content(self, content: ProposalContent, out: list[Action]) -> None:
        """getValue() answered: build the block, sign the proposal (Alg.1 line 19)."""
        if (
            content.height != self.height
            or content.round != self.round
            or self._awaiting_content != content.round
            or self.step != Step.PROPOSE
            or self.address is None
        ):
            return
        self._awaiting_content = None
        evidence = tuple(self.pending_evidence.values())
        rejections = compute_rejection_proofs(
            self.state.chain_id,
            self._proposals,
            {
                r: self._votes.get(VoteType.PREVOTE, r).by_validator.values()
                for r in self._proposals
            },
            self.validators,
            self.state.params,
            self.round,
        )
        last_commit = self.compose_last_commit()
        try:
            block, post_state = build_block(
                self.state,
                self.address,
                list(content.txs),
                evidence,
                last_commit,
                content.model_hash,
                content.contributions,
                self.verifier,
                rejections,
                content.screened,
            )
        except InvalidBlock as error:  # e.g. a bad contribution: propose keeping the model
            out.append(Rejected(f"own proposal content refused: {error}"))
            block, post_state = build_block(
                self.state,
                self.address,
                list(content.txs),
                evidence,
                last_commit,
                self.state.model_hash,
                (),
                self.verifier,
                rejections,
            )
        self._post_states[block.hash] = post_state
        self._send_proposal(block, NIL_ROUND, out)

    def compose_last_commit(self) -> Commit | None:
        """The previous block's commit with every precommit collected so far."""
        if self.last_commit is None or self.state.height == 0:
            return None
        sigs = tuple(sorted(self._last_commit_sigs.values(), key=lambda s: s.validator))
        return Commit(
            self.last_commit.height, self.last_commit.round, self.last_commit.block_hash, sigs
        )

    def _on_commit_received(self, event: CommitReceived, out: list[Action]) -> None:
        """Catch-up: a block decided by the others, proven by its commit."""
        block, commit = event.block, event.commit
        if block.height != self.height or commit.height != self.height:
            return
        if commit.block_hash != block.hash:
            out.append(Rejected("synced commit is not for the synced block"))
            return
        if not is_valid_commit(
            self.state.chain_id, commit, self.validators, self.state.params, self.verifier
        ):
            out.append(Rejected("synced commit is invalid or lacks a quorum"))
            return
        self._blocks[block.hash] = block
        if self._get_post_state(block) is None:
            out.append(Rejected("synced block fails the state transition"))
            return
        self._decide(block, commit, out)

    def _on_evidence(self, evidence: DuplicateVoteEvidence, out: list[Action]) -> None:
        key = evidence.hash()
        if key in self.pending_evidence:
            return
        bond = self.state.bonds.get(evidence.validator)
        a, b = evidence.vote_a.vote, evidence.vote_b.vote
        if (
            bond is None
            or a.chain_id != self.state.chain_id
            or (a.vote_type, a.height, a.round, a.validator)
            != (b.vote_type, b.height, b.round, b.validator)
            or a.block_hash == b.block_hash
            or (a.validator, a.height) in self.state.slashed
            or not all(
                self.verifier.is_valid(bond.public_key, v.vote.sign_bytes(), v.signature)
                for v in (evidence.vote_a, evidence.vote_b)
            )
        ):
            out.append(Rejected("invalid evidence"))
            return
        self._record_evidence(evidence, out)

    def _record_evidence(self, evidence: DuplicateVoteEvidence, out: list[Action]) -> None:
        key = evidence.hash()
        if key in self.pending_evidence or len(self.pending_evidence) >= MAX_PENDING_EVIDENCE:
            return
        self.pending_evidence[key] = evidence
        out.append(Broadcast(evidence))
        self._wake(out)

    def _on_timeout(self, event: TimeoutFired, out: list[Action]) -> None:
        if event.height != self.height or event.round != self.round:
            return
        if self.phase != Phase.ROUNDS:
            return
        if event.step == Step.PROPOSE and self.step == Step.PROPOSE:  # line 57
            if self._extend_for_verdict(out):
                return
            self._send_vote(VoteType.PREVOTE, None, out)
            self.step = Step.PREVOTE
        elif event.step == Step.PREVOTE and self.step == Step.PREVOTE:  # line 61
            self._send_vote(VoteType.PRECOMMIT, None, out)
            self.step = Step.PRECOMMIT
        elif event.step == Step.PRECOMMIT:  # line 65
            self._start_round(Round(self.round + 1), out)

    def _extend_for_verdict(self, out: list[Action]) -> bool:
        """The round's proposal is here and the learner is still scoring it: wait up to the
        genesis ``verdict_timeout`` (or this node's larger ``learning_budget``) in all (once per
        round) before line 57 prevotes nil, so a large model is judged rather than timed out. A
        proposer whose weights never come costs its round at most this."""
        signed = self._proposals.get(self.round)
        if (
            signed is None
            or self.round in self._verdict_waits
            or signed.block.hash not in self._verdicts_requested
            or signed.block.hash in self._verdicts
        ):
            return False
        self._verdict_waits.add(self.round)
        spent = self.timeouts.get_timeout(Step.PROPOSE, self.round)
        extra = max(self.state.params.verdict_timeout, self.learning_budget) - spent
        if extra <= 0:
            return False
        out.append(ScheduleTimeout(self.height, self.round, Step.PROPOSE, Milliseconds(extra)))
        return True

    def _on_gossip_tick(self, event: GossipTick, out: list[Action]) -> None:
        """Tendermint assumes gossip eventually delivers every message: while a round lasts,
        resend every own signed message of this height (not re-signed; earlier rounds' prevotes
        are the polka a locked peer needs to accept a re-proposal, Alg.1 line 28), and ask peers
        for the height's block in case they moved on."""
        if event.height != self.height or event.round != self.round:
            return
        out.extend(Broadcast(message) for message in self._own_messages)
        # Ask peers for this height's block on every tick: a sync can end short of the tip (a
        # lagging peer, a broken stream), messages from far ahead may not come again, and a node
        # that was syncing while this height's votes went by hears nothing more until the next
        # proposer gives up on it, which is a whole propose timeout when that proposer is this
        # node. A peer that has not committed the height answers with nothing.
        out.append(RequestSync(self.height))
        self._schedule_gossip(out)

    # --- validity ---------------------------------------------------------------------------

    def _get_post_state(self, block: Block) -> ChainState | None:
        """The state after ``block`` if it is objectively valid, else None (cached)."""
        if block.hash not in self._post_states:
            try:
                self._post_states[block.hash] = self.transition(self.state, block, self.verifier)
            except InvalidBlock:
                self._post_states[block.hash] = None
        return self._post_states[block.hash]

    def _get_verdict(self, block: Block, round_: Round, out: list[Action]) -> bool | None:
        """The learner's verdict; None while it is pending (the first call requests it)."""
        if block.header.model_hash == self.state.model_hash:
            return True
        verdict = self._verdicts.get(block.hash)
        if verdict is None and block.hash not in self._verdicts_requested:
            self._verdicts_requested.add(block.hash)
            out.append(RequestVerdict(self.height, round_, block, self.state.model_hash))
        return verdict

    # --- the upon rules ---------------------------------------------------------------------

    def _process_rules(self, out: list[Action]) -> None:
        """Fire every enabled rule until none is."""
        if not self.started:
            return
        while True:
            if self._try_decide(out):
                continue
            if self._try_skip_round(out):
                continue
            if self.phase == Phase.ROUNDS and self._try_round_rules(out):
                continue
            return

    def _try_decide(self, out: list[Action]) -> bool:
        """Alg.1 line 49: a proposal with 2f+1 precommits in any round is decided."""
        for round_, block_hash in sorted(self._decision_candidates):
            block = self._blocks.get(block_hash)
            if block is None or self._get_post_state(block) is None:
                continue
            precommits = self._votes.get(VoteType.PRECOMMIT, round_).get_votes_for(block_hash)
            commit = Commit(
                self.height,
                round_,
                block_hash,
                tuple(
                    sorted(
                        (
                            CommitSig(
                                v.vote.validator,
                                v.signature,
                                v.vote.score,
                                v.vote.time_ms,
                                v.vote.values,
                            )
                            for v in precommits
                        ),
                        key=lambda s: s.validator,
                    )
                ),
            )
            self._decide(block, commit, out)
            return True
        return False

    def _decide(self, block: Block, commit: Commit, out: list[Action]) -> None:
        """decision_p[h_p] = v; move to the next height (lines 51-54)."""
        post_state = self._get_post_state(block)
        assert post_state is not None
        out.append(CommitBlock(block, commit, post_state))
        for evidence in block.evidence:
            self.pending_evidence.pop(evidence.hash(), None)
        for key, evidence in list(self.pending_evidence.items()):
            if (evidence.validator, evidence.height) in post_state.slashed or (
                evidence.height + post_state.params.evidence_max_age < post_state.height
            ):
                self.pending_evidence.pop(key)
        self.last_commit = commit
        self._last_commit_sigs = {s.validator: s for s in commit.signatures}
        self._relayed_last_commit = self.is_relay_hub(commit.round)
        self._reset_height(post_state)
        self._enter_height(out)
        future, self._future = self._future, []
        for event in future:
            if isinstance(event, VoteReceived):
                self._on_vote(event.vote, out)
            elif isinstance(event, ProposalReceived):
                self._on_proposal(event.proposal, out)

    def _try_skip_round(self, out: list[Action]) -> bool:
        """Alg.1 line 55: f+1 messages from a later round: StartRound(that round)."""
        later = [r for r in self._skip_candidates if r > self.round]
        self._skip_candidates = set(later)
        if not later:
            return False
        self._start_round(Round(max(later)), out)
        return True

    def _try_round_rules(self, out: list[Action]) -> bool:
        """The rules of the current round (Alg.1 lines 22, 28, 34, 36, 44, 47)."""
        r = self.round
        total = self.validators.total_power
        threshold = self.state.params.threshold
        prevotes = self._votes.get(VoteType.PREVOTE, r)
        signed = self._proposals.get(r)
        if self.step == Step.PROPOSE and signed is not None and self._try_prevote(signed, out):
            return True
        if (
            self.step == Step.PREVOTE
            and r not in self._prevote_timeout_rounds
            and is_quorum(prevotes.power_any, total, threshold)
        ):  # line 34
            self._prevote_timeout_rounds.add(r)
            self._schedule_timeout(Step.PREVOTE, out)
            return True
        if (
            signed is not None
            and self.step >= Step.PREVOTE
            and r not in self._polka_rounds
            and is_quorum(prevotes.get_power_for(signed.block.hash), total, threshold)
            and self._get_post_state(signed.block) is not None
        ):  # line 36
            self._polka_rounds.add(r)
            if self.step == Step.PREVOTE:
                self.locked_block_hash = signed.block.hash
                self.locked_round = r
                self._send_vote(VoteType.PRECOMMIT, signed.block.hash, out)
                self.step = Step.PRECOMMIT
            self.valid_block = signed.block
            self.valid_round = r
            return True
        if self.step == Step.PREVOTE and is_quorum(prevotes.get_power_for(None), total, threshold):
            self._send_vote(VoteType.PRECOMMIT, None, out)  # line 44
            self.step = Step.PRECOMMIT
            return True
        if r not in self._precommit_timeout_rounds and is_quorum(
            self._votes.get(VoteType.PRECOMMIT, r).power_any, total, threshold
        ):  # line 47
            self._precommit_timeout_rounds.add(r)
            self._schedule_timeout(Step.PRECOMMIT, out)
            return True
        return False

    def _try_prevote(self, signed: SignedProposal, out: list[Action]) -> bool:
        """Alg.1 lines 22-33: prevote on the round's proposal (False: verdict pending)."""
        block = signed.block
        valid_round = signed.proposal.valid_round
        objective = self._get_post_state(block) is not None
        rejects: Hash | None = None
        if valid_round == NIL_ROUND:  # line 22
            if not objective:
                approve = False
            elif self.locked_round != NIL_ROUND:
                approve = self.locked_block_hash == block.hash
            else:
                verdict = self._get_verdict(block, self.round, out)
                if verdict is None:
                    return False
                approve = verdict
                if not approve:  # the learner rejected the update: say which (§3.6)
                    rejects = block.hash
        else:  # line 28: needs 2f+1 prevotes for the block in round vr
            prior = self._votes.get(VoteType.PREVOTE, valid_round)
            if not is_quorum(
                prior.get_power_for(block.hash),
                self.validators.total_power,
                self.state.params.threshold,
            ):
                return False
            approve = objective and (
                self.locked_round <= valid_round or self.locked_block_hash == block.hash
            )
        self._send_vote(VoteType.PREVOTE, block.hash if approve else None, out, rejects)
        self.step = Step.PREVOTE
        return True
