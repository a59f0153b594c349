"""What the node tells the engine (events) and what the engine asks of the node (actions)."""

from __future__ import annotations

from dataclasses import dataclass

from learnchain.consensus.messages import (
    Block,
    Commit,
    Contribution,
    DuplicateVoteEvidence,
    SignedProposal,
    SignedTx,
    SignedVote,
)
from learnchain.consensus.state import ChainState
from learnchain.consensus.types import Address, Hash, Height, Milliseconds, Round, Step
from learnchain.consensus.upgrades import UpgradePlan

# --- events -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProposalReceived:
    """A signed proposal (with its block) arrived from the network."""

    proposal: SignedProposal


@dataclass(frozen=True, slots=True)
class VoteReceived:
    """A signed vote arrived from the network."""

    vote: SignedVote


@dataclass(frozen=True, slots=True)
class EvidenceReceived:
    """Duplicate-vote evidence arrived from the network."""

    evidence: DuplicateVoteEvidence


@dataclass(frozen=True, slots=True)
class TimeoutFired:
    """A timeout the engine scheduled has expired."""

    height: Height
    round: Round
    step: Step


@dataclass(frozen=True, slots=True)
class GossipTick:
    """The round's retransmission timer: resend own messages while the round is not over."""

    height: Height
    round: Round


@dataclass(frozen=True, slots=True)
class VerdictReady:
    """The learner's verdict on a proposed model update: approve or reject."""

    height: Height
    block_hash: Hash
    approved: bool
    score: int | None = None  # the model's score on the vote set, for the precommit's extension
    values: tuple[int, ...] = ()  # the contributions' values (§3.5), for the same extension


@dataclass(frozen=True, slots=True)
class ProposalContent:
    """The node's answer to ``RequestProposal``: what to put in this node's block."""

    height: Height
    round: Round
    txs: tuple[SignedTx, ...]
    model_hash: Hash
    contributions: tuple[Contribution, ...] = ()
    screened: tuple[Contribution, ...] = ()  # left out by the proposer's screening (§3.5)


@dataclass(frozen=True, slots=True)
class CommitWaitOver:
    """The pause after a decided block (``timeouts.commit``) is over."""

    height: Height


@dataclass(frozen=True, slots=True)
class WorkReady:
    """The node has something to put in a block at ``height``: transactions, a learning round
    that is ready, or the empty-block interval has passed."""

    height: Height


@dataclass(frozen=True, slots=True)
class CommitReceived:
    """A committed block and its commit, fetched from a peer while catching up."""

    block: Block
    commit: Commit


Event = (
    ProposalReceived
    | VoteReceived
    | EvidenceReceived
    | TimeoutFired
    | GossipTick
    | VerdictReady
    | ProposalContent
    | CommitReceived
    | CommitWaitOver
    | WorkReady
)

# --- actions ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignState:
    """The validator's last signed (height, round, step) and its lock: persisted before sending."""

    height: Height
    round: Round
    step: Step
    locked_round: Round
    locked_block_hash: Hash | None
    messages: tuple[SignedProposal | SignedVote, ...] = ()  # own, this height and round

    def is_behind_or_at(self, height: int, round_: int, step: Step) -> bool:
        """True when signing at (height, round, step) would not move strictly forward."""
        return (height, round_, step) <= (self.height, self.round, self.step)


@dataclass(frozen=True, slots=True)
class PersistSignState:
    """Write the sign state durably; only then carry out the actions after this one."""

    sign_state: SignState


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send a message to every peer, or only to validator ``to`` (the round's proposer, which
    relays it: ChainParams.vote_relay_from)."""

    message: SignedProposal | SignedVote | DuplicateVoteEvidence
    to: Address | None = None


@dataclass(frozen=True, slots=True)
class RelayVote:
    """Send on to every peer a vote that this node, the proposer of the vote's round, counted."""

    vote: SignedVote


@dataclass(frozen=True, slots=True)
class ScheduleTimeout:
    """Deliver ``TimeoutFired(height, round, step)`` after ``delay`` milliseconds."""

    height: Height
    round: Round
    step: Step
    delay: Milliseconds


@dataclass(frozen=True, slots=True)
class ScheduleGossip:
    """Deliver ``GossipTick(height, round)`` after ``delay`` milliseconds."""

    height: Height
    round: Round
    delay: Milliseconds


@dataclass(frozen=True, slots=True)
class RequestVerdict:
    """Fetch the block's weights, check their hash, score them, and answer with VerdictReady."""

    height: Height
    round: Round
    block: Block
    base_model_hash: Hash


@dataclass(frozen=True, slots=True)
class RequestProposal:
    """This node proposes at (height, round): answer with ProposalContent."""

    height: Height
    round: Round
    base_model_hash: Hash


@dataclass(frozen=True, slots=True)
class CommitBlock:
    """Store the decided block, its commit and the new state in one durable write."""

    block: Block
    commit: Commit
    state: ChainState


@dataclass(frozen=True, slots=True)
class RequestSync:
    """Peers are ahead: fetch committed blocks from ``from_height`` and feed CommitReceived."""

    from_height: Height


@dataclass(frozen=True, slots=True)
class ScheduleCommitWait:
    """Deliver ``CommitWaitOver`` after ``delay`` (CometBFT's timeout_commit)."""

    height: Height
    delay: Milliseconds


@dataclass(frozen=True, slots=True)
class AwaitWork:
    """The engine waits at ``height`` until the node reports ``WorkReady`` (or a validator's
    message of the height arrives): no empty blocks."""

    height: Height


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message was refused; it changed nothing."""

    reason: str


@dataclass(frozen=True, slots=True)
class HaltForUpgrade:
    """The chain halts here for an upgrade plan this build does not carry: stop, and let the
    operator install a build that does (consensus/upgrades.py)."""

    plan: UpgradePlan


Action = (
    PersistSignState
    | Broadcast
    | RelayVote
    | ScheduleTimeout
    | ScheduleGossip
    | RequestVerdict
    | RequestProposal
    | CommitBlock
    | RequestSync
    | ScheduleCommitWait
    | AwaitWork
    | Rejected
    | HaltForUpgrade
)
