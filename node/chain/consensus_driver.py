"""The consensus driver: feeds the engine its events and carries out the actions it returns.

One task consumes events in order. Actions are carried out in order: a sign state is persisted
(sync) before the signature is broadcast, and nothing is signed on top of a decided block that
is not yet written. Blocks decided by one batch of events share one synced write: in the happy
path a batch is one event; during catch-up it is many synced blocks, and the engine goes on with
the next batch while they are written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from learnchain.consensus.dispatch import ActionHandler, dispatch
from learnchain.consensus.engine import Engine
from learnchain.consensus.events import (
    Action,
    AwaitWork,
    Broadcast,
    CommitBlock,
    CommitWaitOver,
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
    TimeoutFired,
    VerdictReady,
    VoteReceived,
)
from learnchain.consensus.messages import (
    DuplicateVoteEvidence,
    SignedProposal,
    SignedTx,
    SignedVote,
    Vote,
)
from learnchain.consensus.types import Address, Hash, VoteType
from learnchain.consensus.upgrades import UpgradeNeeded, UpgradePlan
from learnchain.consensus.validators import ValidatorSet
from learnchain.node.chain.block_executor import BlockExecutor
from learnchain.node.chain.engine_inbox import EngineInbox
from learnchain.node.chain.misbehaviour import Misbehaviour, make_conflicting_vote
from learnchain.node.chain.timers import Timers
from learnchain.node.chain.work_signal import WorkSignal
from learnchain.node.learning.app_interface import ModelUpdate, Verdict
from learnchain.node.libs.background import Background
from learnchain.node.p2p.peer_auth import compute_now_ms
from learnchain.node.store.store_worker import StoreWorker
from learnchain.node.telemetry.metrics import Metrics
from learnchain.proto import learnchain_pb2 as pb
from learnchain.proto.wire import evidence_to_proto, proposal_to_proto, vote_to_proto

MAX_EVENTS_PER_BATCH = 512  # events handled before the blocks they decided are written
log = logging.getLogger("learnchain.consensus")


class Application(Protocol):
    """The learning application, as consensus sees it (ABCI++-style)."""

    async def prepare_proposal(self, request: RequestProposal) -> ModelUpdate:
        """The model update for this node's proposal."""
        ...

    async def process_proposal(self, request: RequestVerdict) -> Verdict:
        """The verdict on a proposed block's model update, with this node's score."""
        ...

    def on_precommit(self, vote: Vote) -> None:
        """This node precommitted: it may start the next round's work early."""
        ...

    def get_inline_weights(self, model_hash: Hash) -> bytes:
        """The weights to push beside this node's proposal naming ``model_hash`` (or none)."""
        ...

    def offer_weights(self, weights_hash: Hash, data: bytes) -> None:
        """Weights pushed beside a proposal whose signature checked."""
        ...


class Gossip(Protocol):
    """Sending consensus messages to peers."""

    def gossip(self, envelope: pb.Envelope) -> None:
        """To every peer."""
        ...

    def gossip_to_validator(
        self, validators: ValidatorSet, address: Address, envelope: pb.Envelope
    ) -> bool:
        """To the validator ``address`` alone; False when it is not our peer."""
        ...


class ConsensusDriver(ActionHandler[Awaitable[None] | None]):
    """Runs the engine: events in, actions carried out."""

    def __init__(
        self,
        engine: Engine,
        inbox: EngineInbox,
        io: StoreWorker,
        executor: BlockExecutor,
        app: Application,
        gossip: Gossip,
        reap_txs: Callable[[], tuple[SignedTx, ...]],
        request_sync: Callable[[int], None],
        metrics: Metrics,
        work: WorkSignal | None = None,
        misbehaviour: Misbehaviour | None = None,
    ) -> None:
        self.engine = engine
        self.inbox = inbox
        self._io = io
        self._executor = executor
        self._app = app
        self._gossip = gossip
        self._reap_txs = reap_txs
        self._request_sync = request_sync
        self._metrics = metrics
        self.work = work or WorkSignal(inbox.submit, ())
        self._background = Background()
        self._relay_queue: list[pb.Vote] = []
        self._misbehaviour = misbehaviour
        self.timers = Timers(inbox.submit)

    async def run(self) -> None:
        """Start the engine and handle events until cancelled."""
        self.engine.set_time(compute_now_ms())
        await self._execute(self.engine.start())
        while True:
            for event in await self.inbox.take_batch(MAX_EVENTS_PER_BATCH):
                self.engine.set_time(compute_now_ms())
                await self._execute(self.engine.handle(event))
            self._executor.start_writing()
            await self._executor.finish_writes(keep_one=not self.inbox.is_empty())
            self.inbox.notify_progress()
            self._metrics.round.set(self.engine.round)

    async def _execute(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, (PersistSignState, Broadcast)):
                await self._executor.write_all()  # nothing is signed on top of unwritten blocks
            pending = dispatch(action, self)
            if pending is not None:
                await pending

    # --- incoming (the Peer service) ----------------------------------------------------------

    # Retransmissions are not filtered here: gossip resends a message exactly because its first
    # delivery may have been lost or unusable, and the engine drops duplicates cheaply (cached
    # signature checks, one tally entry per validator and block).

    def receive_vote(self, vote: SignedVote) -> None:
        """A vote from a peer."""
        label = "prevote" if vote.vote.vote_type == VoteType.PREVOTE else "precommit"
        self._metrics.votes.labels(type=label).inc()
        self.inbox.submit(VoteReceived(vote))

    def receive_proposal(self, proposal: SignedProposal, weights: bytes = b"") -> None:
        """A proposal from a peer, perhaps with the weights its block names (kept only when the
        round's proposer signed it: the engine's own check, cached for when it handles it)."""
        self.inbox.submit(ProposalReceived(proposal))
        if (
            weights
            and proposal.block.hash == proposal.proposal.block_hash
            and self.engine.is_signed_by_round_proposer(proposal)
        ):
            self._app.offer_weights(proposal.block.header.model_hash, weights)

    def receive_evidence(self, evidence: DuplicateVoteEvidence) -> None:
        """Evidence from a peer."""
        self.inbox.submit(EvidenceReceived(evidence))

    # --- actions (consensus.dispatch.ActionHandler) ------------------------------------------

    def persist_sign_state(self, action: PersistSignState) -> Awaitable[None]:
        """Written (sync) on the sign-state thread before the signature goes out."""
        return self._io.save_sign_state(action.sign_state)

    def broadcast(self, action: Broadcast) -> None:
        """Gossip an own message (a vote perhaps to the round's relay hub alone)."""
        message = action.message
        if isinstance(message, SignedVote):
            envelope = pb.Envelope(vote=vote_to_proto(message))
            if action.to is None or not self._gossip.gossip_to_validator(
                self.engine.validators, action.to, envelope
            ):
                self._gossip.gossip(envelope)
            self._app.on_precommit(message.vote)
            if self._misbehaviour is Misbehaviour.EQUIVOCATE and self.engine.key is not None:
                conflicting = make_conflicting_vote(message, self.engine.key)
                log.info(
                    "equivocating (byzantine = equivocate)",
                    extra={"height": message.vote.height, "round": message.vote.round},
                )
                self._gossip.gossip(pb.Envelope(vote=vote_to_proto(conflicting)))
        elif isinstance(message, SignedProposal):
            inline = self._app.get_inline_weights(message.block.header.model_hash)
            self._gossip.gossip(pb.Envelope(proposal=proposal_to_proto(message), weights=inline))
        else:
            self._gossip.gossip(pb.Envelope(evidence=evidence_to_proto(message)))

    def relay_vote(self, action: RelayVote) -> None:
        """Queue a vote to relay; the votes queued in one turn of the loop go as one batch."""
        if self._misbehaviour is Misbehaviour.WITHHOLD:
            return
        self._relay_queue.append(vote_to_proto(action.vote))
        self._metrics.relayed_votes.inc()
        if len(self._relay_queue) == 1:
            asyncio.get_running_loop().call_soon(self._flush_relay)

    def _flush_relay(self) -> None:
        votes, self._relay_queue = self._relay_queue, []
        self._gossip.gossip(pb.Envelope(votes=pb.VoteBatch(votes=votes)))

    def schedule_timeout(self, action: ScheduleTimeout) -> None:
        """A TimeoutFired into the inbox after the delay."""
        event = TimeoutFired(action.height, action.round, action.step)
        self.timers.schedule(action.height, action.round, action.delay, event)

    def schedule_gossip(self, action: ScheduleGossip) -> None:
        """A GossipTick into the inbox after the delay."""
        event = GossipTick(action.height, action.round)
        self.timers.schedule(action.height, action.round, action.delay, event)

    def request_verdict(self, action: RequestVerdict) -> None:
        """Ask the application (process_proposal) in the background."""
        self._background.spawn(self._verdict(action))

    async def _verdict(self, request: RequestVerdict) -> None:
        verdict = await self._app.process_proposal(request)
        self.inbox.submit(
            VerdictReady(
                request.height,
                request.block.hash,
                verdict.approved,
                verdict.score,
                verdict.values,
            )
        )

    def request_proposal(self, action: RequestProposal) -> None:
        """Ask the application (prepare_proposal) in the background."""
        self._background.spawn(self._proposal(action))

    async def _proposal(self, request: RequestProposal) -> None:
        if request.height != self.engine.height:
            return  # decided meanwhile (catching up runs through heights faster than this)
        update = await self._app.prepare_proposal(request)
        self.inbox.submit(
            ProposalContent(
                request.height,
                request.round,
                self._reap_txs(),
                update.model_hash,
                update.contributions,
                update.screened,
            )
        )

    def commit_block(self, action: CommitBlock) -> None:
        """Written by the block executor with the other blocks of this batch."""
        self._executor.decide(action)

    def request_sync(self, action: RequestSync) -> None:
        """Catch up through block sync."""
        self._request_sync(action.from_height)

    def schedule_commit_wait(self, action: ScheduleCommitWait) -> None:
        """A CommitWaitOver into the inbox after the delay."""
        event = CommitWaitOver(action.height)
        asyncio.get_running_loop().call_later(action.delay / 1000, self.inbox.submit, event)

    def await_work(self, action: AwaitWork) -> None:
        """Watch for work (transactions, a ready learning round, the empty-block interval)."""
        self.work.await_work(action.height)

    def rejected(self, action: Rejected) -> None:
        """Counted; changes nothing."""
        self._metrics.rejected.labels(reason="consensus").inc()
        log.debug("rejected: %s", action.reason)

    def halt_for_upgrade(self, action: HaltForUpgrade) -> Awaitable[None]:
        """Every decided block written, then consensus ends on UpgradeNeeded (the node stops
        saying which upgrade it needs)."""
        return self._halt(action.plan)

    async def _halt(self, plan: UpgradePlan) -> None:
        await self._executor.write_all()
        raise UpgradeNeeded(plan)

    def close(self) -> None:
        """Stop the work in flight."""
        self.work.close()
        self._background.cancel()
