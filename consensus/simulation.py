"""The real engine and state transition over a simulated network, in one process.

Simulated time (milliseconds), seeded randomness: the same configuration gives the same run.
The network delays each transmission uniformly, drops it with probability ``drop``, and cuts
links during scheduled partitions; validators crash and restart from what they persisted; the
last ``byzantine`` validators misbehave. The learner is synthetic: honest validators approve a good
model update with probability ``approval`` and never approve a poisoned one.
"""

from __future__ import annotations

import enum
import hashlib
import heapq
import itertools
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from learnchain.consensus.crypto import PrivateKey, SignatureVerifier, compute_hash
from learnchain.consensus.dispatch import dispatch
from learnchain.consensus.engine import Engine, Phase, TimeoutConfig
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
    DuplicateVoteEvidence,
    Proposal,
    SignedProposal,
    SignedTx,
    SignedVote,
    Tx,
    TxKind,
    Vote,
)
from learnchain.consensus.params import ChainParams, Genesis, GenesisValidator
from learnchain.consensus.state import (
    ChainState,
    InvalidBlock,
    build_block,
    compute_genesis_state,
    process_block,
)
from learnchain.consensus.types import (
    ZERO_HASH,
    Address,
    ChainId,
    Hash,
    Nonce,
    Round,
    Signature,
    Stake,
    Threshold,
    Tokens,
    VoteType,
    is_quorum,
)
from learnchain.consensus.validators import compute_proposer_of_round


class Behaviour(enum.Enum):
    """Ways a byzantine validator misbehaves."""

    EQUIVOCATE = "equivocate"  # signs a second, conflicting vote for every vote, sent to all
    APPROVE_ALL = "approve_all"  # its learner approves every update, poisoned ones too
    POISON = "poison"  # proposes poisoned model updates
    INVALID = "invalid"  # proposes blocks with a wrong state root
    SILENT = "silent"  # sends nothing
    SPLIT = "split"  # as proposer, sends one block and votes for it to half the peers, another
    #                  block and votes to the other half
    NO_RELAY = "no_relay"  # as a round's proposer, never relays the votes sent to it


STAKE_UNIT = 100  # --stakes are relative; one unit bonds the default min_stake
DEFAULT_BYZANTINE = frozenset(
    {Behaviour.EQUIVOCATE, Behaviour.APPROVE_ALL, Behaviour.POISON, Behaviour.INVALID}
)


@dataclass(frozen=True, slots=True)
class Partition:
    """Links between ``groups`` are cut from ``start`` to ``end`` (simulated ms)."""

    start: int
    end: int
    groups: tuple[frozenset[int], ...]

    def is_cut(self, now: int, a: int, b: int) -> bool:
        """True when a message from ``a`` to ``b`` is lost at ``now``."""
        if not self.start <= now < self.end:
            return False
        return not any(a in g and b in g for g in self.groups)


@dataclass(frozen=True, slots=True)
class StakingTx:
    """Validator ``node`` submits a ``kind`` (stake or unstake) of ``amount`` at ``at`` (ms)."""

    at: int
    node: int
    kind: TxKind
    amount: int


@dataclass(frozen=True, slots=True)
class Crash:
    """Validator ``node`` is down from ``at`` to ``at + down`` (simulated ms)."""

    node: int
    at: int
    down: int


@dataclass(frozen=True)
class SimulationConfig:
    """Everything a run depends on."""

    validators: int = 4
    stakes: tuple[int, ...] = ()
    heights: int = 100
    threshold: Threshold = Threshold(2, 3)
    byzantine: int = 0
    behaviours: frozenset[Behaviour] = DEFAULT_BYZANTINE
    drop: float = 0.0
    min_delay: int = 1
    max_delay: int = 10
    partitions: tuple[Partition, ...] = ()
    crashes: tuple[Crash, ...] = ()
    seed: int = 0
    approval: float = 1.0
    update_probability: float = 0.5
    verdict_delay: int = 2
    timeouts: TimeoutConfig = TimeoutConfig(
        propose=300,
        propose_delta=100,
        prevote=100,
        prevote_delta=50,
        precommit=100,
        precommit_delta=50,
        commit=0,
        gossip=200,
    )
    params: ChainParams = field(default_factory=ChainParams)
    max_sim_ms: int = 0  # 0: a generous default from ``heights``
    # Learning at the pace of training (docs/protocol.md §3.2): validator i needs
    # ``training_ms[i]`` after a model is committed to train its contribution (empty: at once);
    # a round is ready once live validators with more than the threshold of stake are done. A
    # proposer proposes an update only then; with ``wait_for_work`` the engines make no empty
    # blocks and each node reports ``WorkReady`` when the round is ready.
    training_ms: tuple[int, ...] = ()
    wait_for_work: bool = False
    staking: tuple[StakingTx, ...] = ()  # transactions submitted during the run

    def get_stakes(self) -> list[int]:
        """The validators' stakes (equal when none were given)."""
        if not self.stakes:
            return [STAKE_UNIT] * self.validators
        if len(self.stakes) != self.validators:
            raise ValueError(
                f"--stakes lists {len(self.stakes)} stakes for {self.validators} validators"
            )
        if any(s <= 0 for s in self.stakes):
            raise ValueError("every stake must be positive")
        return [s * STAKE_UNIT for s in self.stakes]


@dataclass
class SimulationResult:
    """What a run shows."""

    heights: int
    forks: int
    proposals_by_validator: list[int]
    stake_share: list[float]
    slashed: list[int]
    max_rounds: int
    poisoned_committed: int
    wall_seconds: float
    sim_seconds: float
    signature_verifications: int
    signature_checks: int
    messages_delivered: int
    messages_dropped: int
    evidence_committed: int
    jailed: list[int]
    model_updates: int = 0
    rejections_committed: int = 0  # proofs that the vote rejected a proposal (§3.6)
    rejected: list[int] = field(default_factory=list)  # whose rejected proposals were proven

    def as_dict(self) -> dict[str, object]:
        """The JSON form."""
        heights = max(self.heights, 1)
        return {
            "heights": self.heights,
            "forks": self.forks,
            "proposals_by_validator": self.proposals_by_validator,
            "stake_share": [round(s, 6) for s in self.stake_share],
            "slashed": self.slashed,
            "jailed": self.jailed,
            "max_rounds": self.max_rounds,
            "poisoned_committed": self.poisoned_committed,
            "evidence_committed": self.evidence_committed,
            "rejections_committed": self.rejections_committed,
            "rejected": self.rejected,
            "model_updates": self.model_updates,
            "wall_seconds": round(self.wall_seconds, 3),
            "sim_seconds": round(self.sim_seconds, 3),
            "heights_per_second": round(self.heights / self.wall_seconds, 2)
            if self.wall_seconds
            else None,
            "signature_verifications": self.signature_verifications,
            "signature_verifications_per_height": round(self.signature_verifications / heights, 2),
            "signature_checks_per_height": round(self.signature_checks / heights, 2),
            "messages_delivered": self.messages_delivered,
            "messages_dropped": self.messages_dropped,
        }


@dataclass
class _Node:
    index: int
    key: PrivateKey
    behaviours: frozenset[Behaviour]
    engine: Engine
    blocks: dict[int, tuple[Block, Commit]] = field(default_factory=dict)
    states: dict[int, ChainState] = field(default_factory=dict)
    sign_state: SignState | None = None
    model_since: int = 0  # simulated ms at which this node's current model was committed
    alive: bool = True
    epoch: int = 0  # bumps on crash, so events scheduled before it are dropped
    rejected: list[int] = field(default_factory=list)  # proposers of committed rejection proofs

    @property
    def height(self) -> int:
        """The last committed height."""
        return self.engine.state.height

    @property
    def honest(self) -> bool:
        return not self.behaviours


def compute_key(seed: int, index: int) -> PrivateKey:
    """A deterministic validator key for simulations and testnets."""
    return PrivateKey.from_seed(hashlib.sha256(f"learnchain-sim/{seed}/{index}".encode()).digest())


def compute_genesis(
    keys: Sequence[PrivateKey], stakes: Sequence[int], params: ChainParams, chain_id: str
) -> Genesis:
    """A genesis bonding ``stakes`` to ``keys``, each also holding some liquid tokens."""
    return Genesis(
        chain_id=ChainId(chain_id),
        params=params,
        validators=tuple(
            GenesisValidator(k.public_key, Stake(s), f"sim-{i}", f"v{i}")
            for i, (k, s) in enumerate(zip(keys, stakes, strict=True))
        ),
        accounts=tuple((k.address, Tokens(1000)) for k in keys),
        initial_model_hash=compute_hash(b"initial model"),
        app_hash=ZERO_HASH,
    )


class Simulation:
    """A discrete-event simulation of the validators and the network between them."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        stakes = config.get_stakes()
        if not 0 <= config.byzantine <= config.validators:
            raise ValueError("--byzantine must be between 0 and the number of validators")
        if not 0 <= config.drop < 1:
            raise ValueError("--drop must be in [0, 1)")
        params = replace(config.params, threshold=config.threshold)
        self.keys = [compute_key(config.seed, i) for i in range(config.validators)]
        self.genesis = compute_genesis(self.keys, stakes, params, f"sim-{config.seed}")
        self.genesis_state = compute_genesis_state(self.genesis)
        self.verifier = SignatureVerifier()
        self.index_of: dict[Address, int] = {k.address: i for i, k in enumerate(self.keys)}
        self.stakes = stakes
        self._transitions: dict[tuple[Hash, int, Hash], ChainState | InvalidBlock] = {}
        first_byzantine = config.validators - config.byzantine
        self.nodes = [
            _Node(
                i,
                key,
                config.behaviours if i >= first_byzantine else frozenset(),
                self._make_engine(key, self.genesis_state, None),
            )
            for i, key in enumerate(self.keys)
        ]
        self._shells = [_SimulatedShell(self, node) for node in self.nodes]
        self.now = 0
        self._queue: list[tuple[int, int, int, int, object]] = []
        self._seq = itertools.count()
        self.poisoned: set[Hash] = set()
        self.mempool: dict[Hash, SignedTx] = {}
        self.delivered = 0
        self.dropped = 0

    def _make_engine(
        self, key: PrivateKey, state: ChainState, sign_state: SignState | None
    ) -> Engine:
        return Engine(
            state,
            key,
            self.config.timeouts,
            sign_state,
            self.verifier,
            self._transition,
            wait_for_work=self.config.wait_for_work,
        )

    def _transition(
        self, state: ChainState, block: Block, verifier: SignatureVerifier
    ) -> ChainState:
        """process_block, computed once per distinct (state, block) for all simulated nodes.

        The transition is a pure function of the state (fixed by its last block hash and height)
        and the block; like the signature cache, sharing it across the nodes of one process
        changes no outcome, only how often the same work is repeated.
        """
        key = (state.last_block_hash, state.height, block.hash)
        cached = self._transitions.get(key)
        if cached is None:
            try:
                cached = process_block(state, block, verifier)
            except InvalidBlock as error:
                cached = error
            self._transitions[key] = cached
            if len(self._transitions) > 4096:
                self._transitions.pop(next(iter(self._transitions)))
        if isinstance(cached, InvalidBlock):
            raise cached
        return cached

    # --- scheduling -------------------------------------------------------------------------

    def _schedule(self, delay: int, node: int, payload: object) -> None:
        heapq.heappush(
            self._queue, (self.now + delay, next(self._seq), node, self.nodes[node].epoch, payload)
        )

    def _is_cut(self, a: int, b: int) -> bool:
        return any(p.is_cut(self.now, a, b) for p in self.config.partitions)

    def _send(self, sender: int, recipient: int, event: Event) -> None:
        config = self.config
        if (config.partitions and self._is_cut(sender, recipient)) or (
            config.drop and self.rng.random() < config.drop
        ):
            self.dropped += 1
            return
        self._schedule(self._draw_delay(), recipient, event)

    def _draw_delay(self) -> int:
        config = self.config
        return config.min_delay + int(self.rng.random() * (config.max_delay - config.min_delay + 1))

    def _broadcast(self, sender: int, event: Event, to: Sequence[int] | None = None) -> None:
        if Behaviour.SILENT in self.nodes[sender].behaviours:
            return
        for j in range(len(self.nodes)) if to is None else to:
            if j != sender:
                self._send(sender, j, event)

    # --- running ----------------------------------------------------------------------------

    def run(self) -> SimulationResult:
        """Run until every live honest validator reaches the target height (or time runs out)."""
        config = self.config
        limit = config.max_sim_ms or 60_000 + config.heights * 2_000
        started = time.perf_counter()
        for crash in config.crashes:
            heapq.heappush(self._queue, (crash.at, next(self._seq), crash.node, -1, "crash"))
            heapq.heappush(
                self._queue, (crash.at + crash.down, next(self._seq), crash.node, -1, "restart")
            )
        for staking in config.staking:
            heapq.heappush(self._queue, (staking.at, next(self._seq), staking.node, -1, staking))
        for node in self.nodes:
            self._apply(node, node.engine.start())
        while self._queue:
            when, _, index, epoch, payload = heapq.heappop(self._queue)
            if when > limit:
                break
            self.now = when
            node = self.nodes[index]
            node.engine.set_time(when)  # simulated milliseconds: the blocks' BFT time follows
            if payload == "crash":
                node.alive = False
                node.epoch += 1
                continue
            if payload == "restart":
                self._restart(node)
                continue
            if isinstance(payload, StakingTx):
                self._submit_staking(node, payload)
                continue
            if not node.alive or epoch != node.epoch:
                continue
            if isinstance(payload, RequestSync):
                self._serve_sync(node, payload)
                continue
            if isinstance(payload, AwaitWork):
                self._check_work(node, payload)
                continue
            assert isinstance(
                payload,
                (
                    VoteReceived,
                    ProposalReceived,
                    EvidenceReceived,
                    TimeoutFired,
                    GossipTick,
                    VerdictReady,
                    ProposalContent,
                    CommitReceived,
                    CommitWaitOver,
                    WorkReady,
                ),
            )
            if isinstance(payload, (VoteReceived, ProposalReceived, EvidenceReceived)):
                self.delivered += 1
            height = node.height
            self._apply(node, node.engine.handle(payload))
            if node.height != height and self._is_done():
                break
        return self._result(time.perf_counter() - started)

    def _is_done(self) -> bool:
        target = self.config.heights
        return all(n.height >= target for n in self.nodes if n.honest and n.alive)

    def _restart(self, node: _Node) -> None:
        """Come back from what was persisted: the last committed state and the sign state."""
        node.alive = True
        node.epoch += 1
        node.model_since = self.now  # a restarted learner begins the current round again
        height = max(node.states, default=0)
        state = node.states.get(height, self.genesis_state)
        node.engine = self._make_engine(node.key, state, node.sign_state)
        if height:
            node.engine.restore_last_commit(node.blocks[height][1])
        self._apply(node, node.engine.start())

    # --- carrying out actions ---------------------------------------------------------------

    def _apply(self, node: _Node, actions: list[Action]) -> None:
        shell = self._shells[node.index]
        for action in actions:
            dispatch(action, shell)

    def _verdict(self, node: _Node, block: Block) -> bool:
        if Behaviour.APPROVE_ALL in node.behaviours:
            return True
        if block.header.model_hash in self.poisoned:
            return False
        digest = hashlib.sha256(
            f"{self.config.seed}/{node.index}/".encode() + block.header.model_hash
        ).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.config.approval

    def get_training_left(self, node: _Node) -> int:
        """Simulated ms until the round from this node's current model is ready: the live
        validators' updates are trained in ``training_ms`` each, and the round needs more than
        the threshold of stake (the fastest first), as the node's aggregate rule does."""
        if not self.config.training_ms:
            return 0
        live = sorted(
            (self.config.training_ms[n.index], self.stakes[n.index]) for n in self.nodes if n.alive
        )
        total, reached, needed = sum(self.stakes), 0, None
        for training, stake in live:
            reached += stake
            if is_quorum(reached, total, self.config.threshold):
                needed = training
                break
        if needed is None:
            return 2**31  # no quorum of learners alive: no learning round
        return max(0, node.model_since + needed - self.now)

    def _check_work(self, node: _Node, waiting: AwaitWork) -> None:
        """WorkReady once the learning round is ready (looked at again when it is due, since
        a crash meanwhile can delay it) or a transaction is waiting."""
        if node.engine.height != waiting.height:
            return
        left = 0 if self.mempool else self.get_training_left(node)
        if left:
            self._schedule(min(left, 2**30), node.index, waiting)
            return
        self._apply(node, node.engine.handle(WorkReady(waiting.height)))

    def _on_request_proposal(self, node: _Node, request: RequestProposal) -> None:
        engine = node.engine
        height, round_ = request.height, request.round
        model_hash = request.base_model_hash
        behaviours = node.behaviours
        if Behaviour.SPLIT in behaviours:
            self._propose_split(node, request)
            return
        if Behaviour.POISON in behaviours and (Behaviour.INVALID not in behaviours or height % 2):
            model_hash = compute_hash(f"poison/{height}/{round_}/{node.index}".encode())
            self.poisoned.add(model_hash)
        elif self.rng.random() < self.config.update_probability and not self.get_training_left(
            node
        ):
            model_hash = compute_hash(f"update/{height}/{round_}/{node.index}".encode())
        content = ProposalContent(height, round_, tuple(self.mempool.values()), model_hash)
        actions = engine.handle(content)
        if Behaviour.INVALID in behaviours and not height % 2:
            actions = [self._corrupt(a, node) for a in actions]
        self._apply(node, actions)

    def _corrupt(self, action: Action, node: _Node) -> Action:
        """Replace an outgoing proposal with one whose block has a wrong state root."""
        if not (isinstance(action, Broadcast) and isinstance(action.message, SignedProposal)):
            return action
        signed = action.message
        block = signed.block
        bad = Block(
            replace(block.header, state_root=compute_hash(b"wrong")),
            block.txs,
            block.evidence,
            block.last_commit,
            block.contributions,
        )
        proposal = replace(signed.proposal, block_hash=bad.hash)
        return Broadcast(SignedProposal(proposal, node.key.sign(proposal.sign_bytes()), bad))

    def _propose_split(self, node: _Node, request: RequestProposal) -> None:
        """Equivocate as proposer: block A and votes for it to one half, block B to the other."""
        engine = node.engine
        state = engine.state
        last_commit = engine.compose_last_commit()
        blocks = []
        for tag in (b"A", b"B"):
            block, _ = build_block(
                state,
                node.key.address,
                [],
                (),
                last_commit,
                compute_hash(b"split/" + tag + request.height.to_bytes(8, "big")),
                (),
                self.verifier,
            )
            blocks.append(block)
        others = [i for i in range(len(self.nodes)) if i != node.index]
        halves = (others[: len(others) // 2], others[len(others) // 2 :])
        for block, half in zip(blocks, halves, strict=True):
            proposal = Proposal(
                state.chain_id, request.height, request.round, block.hash, Round(-1)
            )
            signed = SignedProposal(proposal, node.key.sign(proposal.sign_bytes()), block)
            self._broadcast(node.index, ProposalReceived(signed), half)
            for vote_type in (VoteType.PREVOTE, VoteType.PRECOMMIT):
                vote = Vote(
                    state.chain_id,
                    vote_type,
                    request.height,
                    request.round,
                    block.hash,
                    node.key.address,
                )
                sv = SignedVote(vote, node.key.sign(vote.sign_bytes()))
                self._broadcast(node.index, VoteReceived(sv), half)

    def _on_broadcast(self, node: _Node, action: Broadcast) -> None:
        message = action.message
        if isinstance(message, SignedVote):
            if (
                Behaviour.SPLIT in node.behaviours
                and message.vote.round == node.engine.round
                and (node.engine.get_proposer(message.vote.round) == node.key.address)
            ):
                return  # its split votes were already sent
            to = None if action.to is None else [self.index_of[action.to]]
            self._broadcast(node.index, VoteReceived(message), to)
            if Behaviour.EQUIVOCATE in node.behaviours:
                self._broadcast(node.index, VoteReceived(self._conflicting(node, message)), to)
        elif isinstance(message, SignedProposal):
            self._broadcast(node.index, ProposalReceived(message))
        elif isinstance(message, DuplicateVoteEvidence):
            self._broadcast(node.index, EvidenceReceived(message))

    def _conflicting(self, node: _Node, signed: SignedVote) -> SignedVote:
        vote = signed.vote
        other = (
            None
            if vote.block_hash is not None
            else compute_hash(f"other/{vote.height}/{vote.round}".encode())
        )
        conflicting = replace(vote, block_hash=other)
        return SignedVote(conflicting, Signature(node.key.sign(conflicting.sign_bytes())))

    def _serve_sync(self, node: _Node, request: RequestSync) -> None:
        """A reachable peer streams its committed blocks from the requested height."""
        peers = [
            p
            for p in self.nodes
            if p.alive
            and p is not node
            and p.height >= request.from_height
            and not self._is_cut(p.index, node.index)
        ]
        if not peers:
            return
        peer = self.rng.choice(peers)
        for height in range(request.from_height, peer.height + 1):
            if height not in peer.blocks:
                break
            block, commit = peer.blocks[height]
            self._apply(node, node.engine.handle(CommitReceived(block, commit)))
            if node.engine.state.height != height:
                break

    def _submit_staking(self, node: _Node, staking: StakingTx) -> None:
        """Sign ``staking`` with the node's key and next nonce, and wake the waiting engines."""
        state = node.engine.state
        nonce = Nonce(state.get_account(node.key.address).nonce)
        bond = state.bonds.get(node.key.address)
        tx = Tx(
            state.chain_id,
            staking.kind,
            node.key.public_key,
            nonce,
            amount=Tokens(staking.amount),
            endpoint="" if bond is None else bond.endpoint,
        )
        signed = SignedTx(tx, Signature(node.key.sign(tx.sign_bytes())))
        self.mempool[signed.hash()] = signed
        for other in self.nodes:
            if other.alive and other.engine.phase == Phase.WORK_WAIT:
                self._check_work(other, AwaitWork(other.engine.height))

    def _maybe_unjail(self, node: _Node, state: ChainState) -> None:
        """An honest validator jailed for downtime asks to come back once its jail time is over."""
        bond = state.bonds.get(node.key.address)
        if not node.honest or bond is None or not bond.jailed or state.height < bond.jailed_until:
            return
        account = state.get_account(node.key.address)
        tx = Tx(state.chain_id, TxKind.UNJAIL, node.key.public_key, Nonce(account.nonce))
        signed = SignedTx(tx, Signature(node.key.sign(tx.sign_bytes())))
        self.mempool[signed.hash()] = signed

    # --- results ----------------------------------------------------------------------------

    def _result(self, wall: float) -> SimulationResult:
        honest = [n for n in self.nodes if n.honest]
        top = max((n.height for n in honest), default=0)
        forks = 0
        for h in range(1, top + 1):
            hashes = {n.blocks[h][0].hash for n in honest if h in n.blocks}
            forks += len(hashes) > 1
        reference = max(honest, key=lambda n: n.height) if honest else self.nodes[0]
        proposals = [0] * len(self.nodes)
        max_rounds = 0
        poisoned = 0
        updates = 0
        model = self.genesis_state.model_hash
        evidence: set[int] = set()
        for h in sorted(reference.blocks):
            block, commit = reference.blocks[h]
            updates += block.header.model_hash != model
            model = block.header.model_hash
            proposals[self.index_of[block.header.proposer]] += 1
            max_rounds = max(max_rounds, commit.round + 1)
            poisoned += block.header.model_hash in self.poisoned
            for item in block.evidence:
                evidence.add(self.index_of[item.validator])
            for tx in block.txs:
                if tx.tx.evidence is not None:
                    evidence.add(self.index_of[tx.tx.evidence.validator])
        final = reference.engine.state
        jailed = sorted(self.index_of[a] for a, b in final.bonds.items() if b.jailed)
        total_stake = sum(self.stakes)
        live_honest = [n.height for n in honest if n.alive] or [0]
        return SimulationResult(
            heights=min(live_honest),
            forks=forks,
            proposals_by_validator=proposals,
            stake_share=[s / total_stake for s in self.stakes],
            slashed=sorted(evidence),
            max_rounds=max_rounds,
            poisoned_committed=poisoned,
            wall_seconds=wall,
            sim_seconds=self.now / 1000,
            signature_verifications=self.verifier.verifications,
            signature_checks=self.verifier.checks,
            messages_delivered=self.delivered,
            messages_dropped=self.dropped,
            evidence_committed=sum(len(b.evidence) for b, _ in reference.blocks.values()),
            jailed=jailed,
            model_updates=updates,
            rejections_committed=len(reference.rejected),
            rejected=sorted(set(reference.rejected)),
        )


class _SimulatedShell:
    """Carries out one simulated node's actions on the simulated network (an ActionHandler)."""

    def __init__(self, simulation: Simulation, node: _Node) -> None:
        self.simulation = simulation
        self.node = node

    def persist_sign_state(self, action: PersistSignState) -> None:
        """Persisted: survives a simulated crash."""
        self.node.sign_state = action.sign_state

    def broadcast(self, action: Broadcast) -> None:
        """To the other nodes, through the network's delays, drops and partitions."""
        self.simulation._on_broadcast(self.node, action)

    def relay_vote(self, action: RelayVote) -> None:
        """To every other node, unless this one withholds relayed votes."""
        if Behaviour.NO_RELAY not in self.node.behaviours:
            self.simulation._broadcast(self.node.index, VoteReceived(action.vote))

    def schedule_timeout(self, action: ScheduleTimeout) -> None:
        """A TimeoutFired after the delay, in simulated time."""
        self.simulation._schedule(
            action.delay, self.node.index, TimeoutFired(action.height, action.round, action.step)
        )

    def schedule_gossip(self, action: ScheduleGossip) -> None:
        """A GossipTick after the delay, in simulated time."""
        self.simulation._schedule(
            action.delay, self.node.index, GossipTick(action.height, action.round)
        )

    def request_verdict(self, action: RequestVerdict) -> None:
        """The synthetic learner's verdict after ``verdict_delay``."""
        simulation = self.simulation
        simulation._schedule(
            simulation.config.verdict_delay,
            self.node.index,
            VerdictReady(
                action.height, action.block.hash, simulation._verdict(self.node, action.block)
            ),
        )

    def request_proposal(self, action: RequestProposal) -> None:
        """The synthetic learner's proposal (or a byzantine one)."""
        self.simulation._on_request_proposal(self.node, action)

    def commit_block(self, action: CommitBlock) -> None:
        """Kept in the node's simulated store; the mempool forgets the block's transactions."""
        node = self.node
        previous = node.states.get(action.block.height - 1, self.simulation.genesis_state)
        if action.state.model_hash != previous.model_hash:
            node.model_since = self.simulation.now
        node.blocks[action.block.height] = (action.block, action.commit)
        for rejection in action.block.rejections:
            proposer = compute_proposer_of_round(previous.validators, rejection.proposal.round)
            node.rejected.append(self.simulation.index_of[proposer])
        node.states[action.block.height] = action.state
        node.states.pop(action.block.height - 2, None)
        for tx in action.block.txs:
            self.simulation.mempool.pop(tx.hash(), None)
        self.simulation._maybe_unjail(node, action.state)

    def request_sync(self, action: RequestSync) -> None:
        """Served by a reachable peer after one network delay."""
        simulation = self.simulation
        config = simulation.config
        simulation._schedule(
            simulation.rng.randint(config.min_delay, config.max_delay), self.node.index, action
        )

    def schedule_commit_wait(self, action: ScheduleCommitWait) -> None:
        """A CommitWaitOver after the delay, in simulated time."""
        self.simulation._schedule(action.delay, self.node.index, CommitWaitOver(action.height))

    def await_work(self, action: AwaitWork) -> None:
        """WorkReady once this node's update is trained, or a transaction is waiting."""
        if Behaviour.SILENT not in self.node.behaviours:
            self.simulation._check_work(self.node, action)

    def rejected(self, action: Rejected) -> None:
        """Refused messages change nothing in a simulation."""

    def halt_for_upgrade(self, action: HaltForUpgrade) -> None:
        """A halted node is silent from then on (its engine ignores every event)."""


def run_simulation(config: SimulationConfig) -> SimulationResult:
    """Run one simulation."""
    return Simulation(config).run()
