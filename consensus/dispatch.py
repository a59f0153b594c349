"""One exhaustive dispatch over the engine's actions, shared by every shell that drives it.

The daemon and the simulator each implement ``ActionHandler``; ``dispatch`` ends in
``assert_never``, so a new kind of action that a shell forgets is a type error, not a silent
no-op.
"""

from __future__ import annotations

from typing import Protocol, TypeVar, assert_never

from learnchain.consensus.events import (
    Action,
    AwaitWork,
    Broadcast,
    CommitBlock,
    HaltForUpgrade,
    PersistSignState,
    Rejected,
    RelayVote,
    RequestProposal,
    RequestSync,
    RequestVerdict,
    ScheduleCommitWait,
    ScheduleGossip,
    ScheduleTimeout,
)

R_co = TypeVar("R_co", covariant=True)


class ActionHandler(Protocol[R_co]):
    """What a shell does for each kind of action."""

    def persist_sign_state(self, action: PersistSignState) -> R_co:
        """Write the sign state durably before anything after it goes out."""
        ...

    def broadcast(self, action: Broadcast) -> R_co:
        """Send a signed message to every peer (or to one validator)."""
        ...

    def relay_vote(self, action: RelayVote) -> R_co:
        """Send on a vote this node counted as its round's relay hub."""
        ...

    def schedule_timeout(self, action: ScheduleTimeout) -> R_co:
        """Deliver ``TimeoutFired`` after the delay."""
        ...

    def schedule_gossip(self, action: ScheduleGossip) -> R_co:
        """Deliver ``GossipTick`` after the delay."""
        ...

    def request_verdict(self, action: RequestVerdict) -> R_co:
        """Judge a proposed block's model update and answer with ``VerdictReady``."""
        ...

    def request_proposal(self, action: RequestProposal) -> R_co:
        """Choose this node's block content and answer with ``ProposalContent``."""
        ...

    def commit_block(self, action: CommitBlock) -> R_co:
        """Store a decided block, its commit and its state in one durable write."""
        ...

    def request_sync(self, action: RequestSync) -> R_co:
        """Fetch committed blocks from peers that are ahead."""
        ...

    def schedule_commit_wait(self, action: ScheduleCommitWait) -> R_co:
        """Deliver ``CommitWaitOver`` after the delay."""
        ...

    def await_work(self, action: AwaitWork) -> R_co:
        """Deliver ``WorkReady`` once there is something to put in a block."""
        ...

    def rejected(self, action: Rejected) -> R_co:
        """Account for a refused message."""
        ...

    def halt_for_upgrade(self, action: HaltForUpgrade) -> R_co:
        """Stop: the chain needs an upgrade this build does not carry."""
        ...


def dispatch(action: Action, handler: ActionHandler[R_co]) -> R_co:
    """Hand ``action`` to the handler's method for its kind."""
    match action:
        case PersistSignState():
            return handler.persist_sign_state(action)
        case Broadcast():
            return handler.broadcast(action)
        case RelayVote():
            return handler.relay_vote(action)
        case ScheduleTimeout():
            return handler.schedule_timeout(action)
        case ScheduleGossip():
            return handler.schedule_gossip(action)
        case RequestVerdict():
            return handler.request_verdict(action)
        case RequestProposal():
            return handler.request_proposal(action)
        case CommitBlock():
            return handler.commit_block(action)
        case RequestSync():
            return handler.request_sync(action)
        case ScheduleCommitWait():
            return handler.schedule_commit_wait(action)
        case AwaitWork():
            return handler.await_work(action)
        case Rejected():
            return handler.rejected(action)
        case HaltForUpgrade():
            return handler.halt_for_upgrade(action)
        case _:
            assert_never(action)
