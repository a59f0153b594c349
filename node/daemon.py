"""The validator daemon: the consensus engine driven by gRPC, timers, LevelDB and the learner.

One asyncio task consumes events in order, feeds them to the engine and carries out the actions
it returns, in order: a sign state is persisted (sync) before the signature is broadcast, and a
block is stored (one sync write batch) before anything after it. Training, evaluation and
LevelDB writes run in worker threads, so the node keeps answering while it trains.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import random
import signal
import time
from collections import OrderedDict, deque
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from consensus.crypto import SignatureVerifier, compute_valid_signatures, is_valid_signature
from consensus.engine import Engine
from consensus.events import (
    Action,
    Broadcast,
    CommitBlock,
    CommitReceived,
    Event,
    EvidenceReceived,
    GossipTick,
    PersistSignState,
    ProposalContent,
    ProposalReceived,
    Rejected,
    RelayVote,
    RequestProposal,
    RequestSync,
    RequestVerdict,
    ScheduleGossip,
    ScheduleTimeout,
    TimeoutFired,
    VerdictReady,
    VoteReceived,
)
from consensus.messages import (
    Contribution,
    DuplicateVoteEvidence,
    SignedProposal,
    SignedTx,
    SignedVote,
    Vote,
)
from consensus.state import ChainState, compute_genesis_state
from consensus.types import Address, Hash, PublicKey, Signature, VoteType
from consensus.validators import compute_proposer_of_round
from ml.codec import WeightsBytes
from ml.errors import MLError
from node.files import (
    DATA_DIR,
    GENESIS_FILE,
    ConfigError,
    check_host_port,
    get_advertised_address,
    read_config,
    read_genesis,
    read_key,
)
from node.learning import EncodedWeights, LearningWorker, load_learner
from node.metrics import Metrics
from node.peers import INLINE_WEIGHTS_BYTES, MAX_MESSAGE_BYTES, Peer, PeerSet
from node.services import add_services
from node.store import Store
from node.wire import (
    WireError,
    block_from_proto,
    commit_from_proto,
    contribution_to_proto,
    evidence_to_proto,
    proposal_to_proto,
    tx_to_proto,
    vote_to_proto,
)
from proto import learnchain_pb2 as pb

MAX_MEMPOOL = 10_000
MAX_EVENTS_PER_BATCH = 512  # events handled before the blocks they decided are written
SYNC_WINDOW = 512  # blocks a catch-up stream may run ahead of the engine
SYNC_CHUNK = 64  # synced blocks whose signatures are verified together
SYNC_CHUNKS_VERIFYING = 3  # chunks whose signatures may be in verification at once


def create_verifier_pool() -> ProcessPoolExecutor:
    """Processes that verify catch-up signatures: threads would contend for the GIL with the
    event loop between libsodium calls (measured: twice the CPU per synced block). Spawned, not
    forked, so that they hold neither torch nor the node's threads; started on first use."""
    return ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn"))


PRUNE_EVERY = 50  # heights between prunings of stored weights beyond retain_models
ANNOUNCE_INTERVAL = 5.0  # seconds between Hello rounds to every peer (peers forget on restart)
ROUNDS_BEFORE_PLAIN_BLOCKS = 2
T = TypeVar("T")
log = logging.getLogger("learnchain.node")


class JsonFormatter(logging.Formatter):
    """One JSON object per log line."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": round(record.created, 3),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
        )


def setup_logging(log_format: str, level: str = "info") -> None:
    """Text or JSON-lines logs on stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def compute_inline_weights(weights: EncodedWeights | None) -> bytes:
    """The bytes to push beside the message naming ``weights``: all of them when small enough,
    else none (peers fetch them with FetchWeights)."""
    if weights is None or len(weights.data) > INLINE_WEIGHTS_BYTES:
        return b""
    return weights.data


def compute_awaited_contributors(
    validators: set[Address], last_contributors: set[Address], own: Address
) -> set[Address]:
    """The validators an aggregating proposer waits for: those that contributed at the last
    height (and itself), or all of them when it saw no contribution there. A validator that went
    quiet is not waited out at every height; its contribution is still used when it arrives in
    time, and once it contributes again it is waited for again."""
    live = validators & (last_contributors | {own})
    return live if last_contributors else set(validators)


class Node:
    """One validator (or full node) process."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.config = read_config(home)
        self.genesis_file = read_genesis(home)
        self.genesis_json = (home / GENESIS_FILE).read_bytes()
        self.advertised = get_advertised_address(self.config)
        self.key = read_key(home)
        self.genesis_state = compute_genesis_state(self.genesis_file.genesis)
        self.store = Store(home / DATA_DIR / "chain.db")
        state = self.store.load_state()
        if state is None:
            self.store.save_state(self.genesis_state)
            state = self.genesis_state
        elif state.chain_id != self.genesis_state.chain_id:
            raise ConfigError(
                f"{home / DATA_DIR}: the database is for chain {state.chain_id!r}, "
                f"genesis.json for {self.genesis_state.chain_id!r}"
            )
        self.committed: ChainState = state  # the state of the last block written to the store
        self._retained_models = deque(
            self.store.get_recent_model_hashes(self.config.retain_models) or [state.model_hash],
            maxlen=self.config.retain_models,
        )
        self.verifier = SignatureVerifier()
        self.engine = Engine(
            state, self.key, self.config.timeouts, self.store.load_sign_state(), self.verifier
        )
        if state.height > 0:
            commit = self.store.get_commit(state.height)
            if commit is not None:
                self.engine.restore_last_commit(commit)
        self.metrics = Metrics()
        self.peers = PeerSet(list(self.config.persistent_peers))
        self.events: asyncio.Queue[Event | _Start] = asyncio.Queue()
        self.mempool: OrderedDict[Hash, SignedTx] = OrderedDict()
        # Contributions by height: the current model's, and the next one's from validators that
        # committed before this node did (kept so the next proposer need not wait them out).
        self.contributions: dict[int, dict[Address, Contribution]] = {}
        self._last_contributors: set[Address] = set()  # who contributed to the last block's pool
        self._contributions_changed = asyncio.Event()
        self._arriving_weights: dict[Hash, asyncio.Task[None]] = {}
        self._unstored_weights: dict[Hash, WeightsBytes] = {}  # checked, being written
        self._proposed_weights: EncodedWeights | None = None  # pushed beside our proposal
        # (height, model hash, training): the next contribution, started at our precommit
        self._early: tuple[int, Hash, asyncio.Task[EncodedWeights | None]] | None = None
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        # The sign state has its own writer so a vote never queues behind large weights.
        self._sign_io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sign-state")
        self._verifiers = create_verifier_pool()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._model_task: asyncio.Task[None] | None = None
        self._syncing = False
        self._pending_blocks: list[CommitBlock] = []
        self._relay_queue: list[pb.Vote] = []
        self._writes: deque[tuple[asyncio.Future[None], list[CommitBlock]]] = deque()
        self._progress = asyncio.Event()  # set whenever the engine has handled a batch of events
        self._last_commit_time = time.monotonic()
        self._busy_at_last_commit = 0.0
        self.learning: LearningWorker | None = None
        self.server: grpc.aio.Server | None = None
        self.stopped = asyncio.Event()

    # --- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the learner, serve gRPC, and start consensus."""
        loop = asyncio.get_running_loop()
        config = self.config
        learner = await loop.run_in_executor(
            None,
            load_learner,
            self.genesis_file.task,
            config.data,
            config.data.party,
            config.attack,
        )
        self.learning = LearningWorker(learner)
        if self.learning.current_hash() != self.genesis_state.model_hash:
            raise ConfigError(
                f"{self.home / 'genesis.json'}: initial_model_hash does not match the task's "
                "initial model (different task, seed or software version)"
            )
        genesis_weights = self.learning.current_encoded()
        await self._io_run(
            self.store.put_weights, genesis_weights.weights_hash, [genesis_weights.data]
        )
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ]
        )
        add_services(self.server, self)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, self.server)
        names = [
            pb.DESCRIPTOR.services_by_name["Peer"].full_name,
            pb.DESCRIPTOR.services_by_name["Query"].full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ]
        reflection.enable_server_reflection(names, self.server)
        if self.server.add_insecure_port(config.listen) == 0:
            raise ConfigError(f"{self.home / 'config.toml'}: listen: cannot bind {config.listen}")
        await self.server.start()
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        if config.metrics:
            self.metrics.serve(config.metrics)
        self._spawn(self._consume())
        self._add_validator_peers(self.committed)
        if self.advertised:
            self._spawn(self._announce())
        self._ensure_model()
        self.events.put_nowait(_Start())
        log.info(
            "node %s (%s) listening on %s at height %d",
            config.moniker,
            self.key.address.hex()[:12],
            config.listen,
            self.engine.state.height,
        )

    async def stop(self) -> None:
        """Stop serving and release everything."""
        for task in list(self._tasks):
            task.cancel()
        if self.server is not None:
            await self.server.stop(grace=0.5)
        await self.peers.close()
        if self.learning is not None:
            self.learning.close()
        self._io.shutdown(wait=True)
        self._verifiers.shutdown(wait=False, cancel_futures=True)
        self._sign_io.shutdown(wait=True)
        self.store.close()
        self.stopped.set()

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    async def _io_run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    async def read_block_batch(
        self, start: int, stop: int, max_blocks: int, max_bytes: int
    ) -> list[tuple[bytes, bytes]]:
        """Stored blocks and commits from ``start`` for one GetBlocks message, read off the loop."""
        batch: list[tuple[bytes, bytes]] = await self._io_run(
            self.store.get_raw_block_batch, start, stop, max_blocks, max_bytes
        )
        return batch

    # --- the consensus loop -----------------------------------------------------------------

    async def _consume(self) -> None:
        """Handle events in order; blocks decided by a batch of events share one synced write.

        In the happy path a batch is one event and its block is written before the next event.
        During catch-up it is many synced blocks, written in one batch (still sync=True, still
        atomic, one disk flush), and the engine goes on with the next batch while it is written.
        """
        while True:
            batch = [await self.events.get()]
            while len(batch) < MAX_EVENTS_PER_BATCH and not self.events.empty():
                batch.append(self.events.get_nowait())
            for event in batch:
                if isinstance(event, _Start):
                    actions = self.engine.start()
                else:
                    actions = self.engine.handle(event)
                await self._execute(actions)
            self._start_writing_decided_blocks()
            await self._finish_writes(keep_one=not self.events.empty())
            self._progress.set()
            self.metrics.round.set(self.engine.round)

    async def _execute(self, actions: list[Action]) -> None:
        loop = asyncio.get_running_loop()
        for action in actions:
            if isinstance(action, (PersistSignState, Broadcast)):
                await self._write_decided_blocks()  # nothing is signed on top of unwritten blocks
            if isinstance(action, PersistSignState):
                await loop.run_in_executor(
                    self._sign_io, self.store.save_sign_state, action.sign_state
                )
            elif isinstance(action, Broadcast):
                self._broadcast(action.message, action.to)
                if isinstance(action.message, SignedVote):
                    self._start_early_contribution(action.message.vote)
            elif isinstance(action, RelayVote):
                self._relay(action.vote)
            elif isinstance(action, ScheduleTimeout):
                loop.call_later(
                    action.delay / 1000,
                    self.events.put_nowait,
                    TimeoutFired(action.height, action.round, action.step),
                )
            elif isinstance(action, ScheduleGossip):
                loop.call_later(
                    action.delay / 1000,
                    self.events.put_nowait,
                    GossipTick(action.height, action.round),
                )
            elif isinstance(action, CommitBlock):
                self._pending_blocks.append(action)
            elif isinstance(action, RequestVerdict):
                self._spawn(self._verdict(action))
            elif isinstance(action, RequestProposal):
                self._spawn(self._build_proposal(action))
            elif isinstance(action, RequestSync):
                log.debug(
                    "sync requested from height %d (syncing: %s)", action.from_height, self._syncing
                )
                if not self._syncing:
                    self._spawn(self._sync(action.from_height))
            elif isinstance(action, Rejected):
                self.metrics.rejected.labels(reason="consensus").inc()
                log.debug("rejected: %s", action.reason)

    async def _write_decided_blocks(self) -> None:
        """Write the blocks decided so far, then act on each commit."""
        self._start_writing_decided_blocks()
        await self._finish_writes()

    def _start_writing_decided_blocks(self) -> None:
        """Write the blocks decided so far in one sync batch, behind any write in flight (the
        one store thread keeps the order)."""
        if not self._pending_blocks:
            return
        decided, self._pending_blocks = self._pending_blocks, []
        blocks = [(a.block, a.commit) for a in decided]
        write = asyncio.ensure_future(
            self._io_run(self.store.save_blocks, blocks, decided[-1].state)
        )
        self._writes.append((write, decided))

    async def _finish_writes(self, keep_one: bool = False) -> None:
        """Wait for the writes in flight, oldest first (all but the newest if ``keep_one``), and
        act on each commit once its block is on disk."""
        while len(self._writes) > (1 if keep_one else 0):
            write, decided = self._writes[0]
            await write
            self._writes.popleft()
            for action in decided:
                previous, self.committed = self.committed, action.state
                self._after_commit(action, previous.model_hash)

    def _broadcast(
        self, message: SignedProposal | SignedVote | DuplicateVoteEvidence, to: Address | None
    ) -> None:
        if isinstance(message, SignedVote):
            envelope = pb.Envelope(vote=vote_to_proto(message))
            hub = None if to is None else self._find_validator_peer(to)
            if hub is not None:
                hub.gossip(envelope)
            else:
                self.peers.gossip(envelope)
        elif isinstance(message, SignedProposal):
            weights = self._proposed_weights
            ours = weights is not None and weights.weights_hash == message.block.header.model_hash
            inline = compute_inline_weights(weights) if ours else b""
            self.peers.gossip(pb.Envelope(proposal=proposal_to_proto(message), weights=inline))
        else:
            self.peers.gossip(pb.Envelope(evidence=evidence_to_proto(message)))

    def _find_validator_peer(self, address: Address) -> Peer | None:
        """Our peer for the validator ``address`` (by its endpoint in the chain state)."""
        member = self.engine.validators.get_validator(address)
        return None if member is None else self.peers.find(member.endpoint)

    def _relay(self, vote: SignedVote) -> None:
        """Queue a vote to relay; the votes queued in one turn of the event loop go as one batch."""
        self._relay_queue.append(vote_to_proto(vote))
        self.metrics.relayed_votes.inc()
        if len(self._relay_queue) == 1:
            asyncio.get_running_loop().call_soon(self._flush_relay)

    def _flush_relay(self) -> None:
        votes, self._relay_queue = self._relay_queue, []
        self.peers.gossip(pb.Envelope(votes=pb.VoteBatch(votes=votes)))

    def _after_commit(self, action: CommitBlock, previous_model: Hash) -> None:
        block, state = action.block, action.state
        now = time.monotonic()
        log.debug("committed height %d at %.6f", block.height, now)
        self.metrics.height.set(block.height)
        self.metrics.rounds_per_height.observe(action.commit.round + 1)
        self.metrics.block_interval.observe(now - self._last_commit_time)
        if self.learning is not None:
            busy = self.learning.busy_seconds - self._busy_at_last_commit
            self._busy_at_last_commit = self.learning.busy_seconds
            self.metrics.learner_seconds.observe(busy)
            self.metrics.round_overhead.observe(max(0.0, now - self._last_commit_time - busy))
        self.metrics.peers.set(self.peers.connected)
        self._last_commit_time = now
        for tx in block.txs:
            self.mempool.pop(tx.hash(), None)
        self._last_contributors = set(self.contributions.get(state.height - 1, {}))
        self.contributions = {h: c for h, c in self.contributions.items() if h >= state.height}
        if block.header.model_hash != previous_model:
            self.metrics.model_updates.inc()
            log.info(
                "height %d: model update %s from %s",
                block.height,
                block.header.model_hash.hex()[:12],
                block.header.proposer.hex()[:12],
            )
        if state.model_hash != self._retained_models[-1]:
            self._retained_models.append(state.model_hash)
        if block.height % PRUNE_EVERY == 0:
            self._spawn(self._prune_weights())
        self._add_validator_peers(state)
        self._start_learning(state)

    def _start_learning(self, state: ChainState) -> None:
        """A written block: follow its model and, in aggregate mode, train a contribution."""
        self._ensure_model()
        if self._is_contributor(state, state.height + 1):
            self._spawn(self._contribute(state))

    def _is_contributor(self, state: ChainState, height: int) -> bool:
        """True when this node trains a contribution for the block at ``height``."""
        return (
            self.config.train
            and self.learning is not None
            and state.params.mode == "aggregate"
            and state.params.is_training_height(height)
            and self.engine.is_validator()
            and not self._syncing
        )

    def _start_early_contribution(self, vote: Vote) -> None:
        """Optimistic execution: a block this node precommits almost always commits, so the next
        contribution starts training from its model now, overlapping the precommit round trip
        and the block write. It is announced only if that block is the one committed."""
        if (
            vote.vote_type != VoteType.PRECOMMIT
            or vote.block_hash is None
            or vote.validator != self.engine.address
            or (self._early is not None and self._early[0] == vote.height)
            or not self._is_contributor(self.engine.state, vote.height + 1)
        ):
            return
        block = self.engine.get_block(vote.block_hash)
        if block is None:
            return
        model_hash = block.header.model_hash
        self._early = (vote.height, model_hash, self._spawn(self._train_early(model_hash)))

    async def _train_early(self, model_hash: Hash) -> EncodedWeights | None:
        assert self.learning is not None
        data = await self._get_weights(model_hash, None)
        if data is None:
            return None
        try:
            return await self.learning.propose_from(data)
        except MLError as error:
            log.debug("early contribution failed: %s", error)
            return None

    async def _prune_weights(self) -> None:
        """Delete stored weights other than the last ``retain_models`` committed models and the
        current height's work in progress (contributions, proposals, weights arriving)."""
        keep = set(self._retained_models) | set(self._arriving_weights)
        keep |= set(self._unstored_weights)
        keep |= {c.weights_hash for pool in self.contributions.values() for c in pool.values()}
        if self._proposed_weights is not None:
            keep.add(self._proposed_weights.weights_hash)
        pruned = await self._io_run(self.store.prune_weights, keep)
        log.debug("pruned %d stored weights", pruned)

    # --- peers --------------------------------------------------------------------------------

    def _is_own_address(self, address: str) -> bool:
        return address in (self.advertised, self.config.listen)

    def _add_validator_peers(self, state: ChainState) -> None:
        """Validators talk to every validator: dial the endpoints the chain state lists."""
        for member in state.validators.validators:
            if (
                member.endpoint
                and member.address != self.key.address
                and not self._is_own_address(member.endpoint)
            ):
                self.peers.add(member.endpoint)

    async def _announce(self) -> None:
        """Say Hello to every peer now and then, so nodes that do not list us still gossip to us."""
        request = pb.HelloRequest(
            chain_id=self.genesis_state.chain_id,
            node_id=self.key.address,
            endpoint=self.advertised,
        )
        while True:
            await asyncio.gather(*(peer.hello(request) for peer in list(self.peers.peers)))
            await asyncio.sleep(ANNOUNCE_INTERVAL)

    def receive_hello(self, request: pb.HelloRequest) -> pb.HelloResponse:
        """A node announces the address to gossip to; checked, then added to the peers."""
        if request.chain_id != self.genesis_state.chain_id:
            raise ValueError(f"hello is for chain {request.chain_id!r}")
        if len(request.node_id) != 20:
            raise ValueError("node_id must be 20 bytes")
        if not 0 < len(request.endpoint) <= 256:
            raise ValueError("endpoint must be 1 to 256 characters")
        try:
            check_host_port(Path("hello"), "endpoint", request.endpoint)
        except ConfigError as error:
            raise ValueError(str(error)) from None
        if request.node_id != self.key.address and not self._is_own_address(request.endpoint):
            known = self.peers.find(request.endpoint)
            if known is None:
                self.peers.add(request.endpoint)
            else:
                known.redial()
        return pb.HelloResponse(
            chain_id=self.genesis_state.chain_id,
            node_id=self.key.address,
            height=self.committed.height,
        )

    # --- the model ----------------------------------------------------------------------------

    def _ensure_model(self) -> None:
        """Bring the learner to the chain's model, fetching weights when needed."""
        if self.learning is None or self.learning.current_hash() == self.engine.state.model_hash:
            return
        if self._model_task is None or self._model_task.done():
            self._model_task = self._spawn(self._follow_model())

    async def _follow_model(self) -> None:
        assert self.learning is not None
        while self.learning.current_hash() != self.engine.state.model_hash:
            target = self.engine.state.model_hash
            data = await self._get_weights(target, None)
            if data is None:
                await asyncio.sleep(0.5)  # no peer has them yet: the chain keeps going meanwhile
                continue
            await self.learning.accept(data)

    async def _model_ready(self) -> bool:
        """Wait (at most one propose timeout) until the learner holds the chain's model.

        Consensus never waits on learning without bound: past the wait a verdict is a
        rejection and a proposal carries no update, and the round goes on.
        """
        if self._model_task is None or self._model_task.done():
            return True
        try:
            await asyncio.wait_for(
                asyncio.shield(self._model_task), self.config.timeouts.propose / 1000
            )
        except TimeoutError:
            log.warning("the learner does not hold the chain's model yet; not waiting longer")
            return False
        except Exception:
            return False
        return True

    async def _get_weights(self, weights_hash: Hash, preferred: str | None) -> WeightsBytes | None:
        """Weights from the store, or fetched from a peer (preferred first) and verified."""
        assert self.learning is not None
        arriving = self._arriving_weights.get(weights_hash)
        if arriving is not None:
            await asyncio.wait([arriving])
        unstored = self._unstored_weights.get(weights_hash)
        if unstored is not None:
            return unstored
        if self.store.has_weights(weights_hash):
            return b"".join(await self._io_run(lambda: list(self.store.iter_weights(weights_hash))))
        peers = list(self.peers.peers)
        random.shuffle(peers)
        peers.sort(key=lambda p: p.address != preferred)
        for peer in peers:
            data = await peer.fetch_weights(weights_hash, self.learning.max_bytes)
            if data is not None and await self._keep_weights(weights_hash, data):
                return data
        return None

    async def _verdict(self, request: RequestVerdict) -> None:
        assert self.learning is not None
        self._ensure_model()  # an early contribution may have moved the learner ahead
        if not await self._model_ready():
            self.events.put_nowait(VerdictReady(request.height, request.block.hash, False))
            return
        proposer = compute_proposer_of_round(self.engine.validators, request.round)
        member = self.engine.validators.get_validator(proposer)
        data = await self._get_weights(
            request.block.header.model_hash, member.endpoint if member else None
        )
        approved = False
        if data is not None:
            try:
                approved = await self.learning.vote(data)
            except MLError:
                approved = False
        self.events.put_nowait(VerdictReady(request.height, request.block.hash, approved))

    async def _store_weights(self, weights: EncodedWeights) -> None:
        await self._io_run(self.store.put_weights, weights.weights_hash, [weights.data])

    async def _build_proposal(self, request: RequestProposal) -> None:
        """getValue(): train (solo) or aggregate contributions (aggregate mode)."""
        assert self.learning is not None
        if request.height != self.engine.height:
            return  # decided meanwhile (catching up runs through heights faster than this)
        self._ensure_model()  # an early contribution may have moved the learner ahead
        ready = await self._model_ready()
        state = self.engine.state
        txs = tuple(self.mempool.values())
        model_hash = state.model_hash
        used: tuple[Contribution, ...] = ()
        # Updates need every survivor's approval when stake is tight; after two failed rounds at
        # a height, propose without one so the chain never stalls on learning (DESIGN §2).
        train = (
            self.config.train
            and ready
            and request.round < ROUNDS_BEFORE_PLAIN_BLOCKS
            and state.params.is_training_height(request.height)
        )
        try:
            if train and state.params.mode == "solo":
                weights = await self.learning.propose()
                await self._store_weights(weights)
                self._proposed_weights = weights
                model_hash = weights.weights_hash
            elif train:
                pool = await self._await_contributions(state)
                fetched = await asyncio.gather(
                    *(self._get_contribution_weights(state, c) for c in pool)
                )
                inputs = [
                    (c.validator.hex(), data, c.samples)
                    for c, data in zip(pool, fetched, strict=True)
                    if data is not None
                ]
                if inputs:
                    weights, used_ids = await self.learning.aggregate(inputs)
                    await self._store_weights(weights)
                    self._proposed_weights = weights
                    model_hash = weights.weights_hash
                    used = tuple(c for c in pool if c.validator.hex() in used_ids)
        except MLError as error:
            log.warning("no model update in this proposal: %s", error)
            model_hash, used = state.model_hash, ()
        self.events.put_nowait(
            ProposalContent(request.height, request.round, txs, model_hash, used)
        )

    async def _get_contribution_weights(
        self, state: ChainState, contribution: Contribution
    ) -> WeightsBytes | None:
        member = state.validators.get_validator(contribution.validator)
        return await self._get_weights(
            contribution.weights_hash, member.endpoint if member else None
        )

    async def _await_contributions(self, state: ChainState) -> list[Contribution]:
        """Contributions for the current model: every live validator's, or what came within a
        deadline (see ``compute_awaited_contributors``)."""
        deadline = time.monotonic() + self.config.timeouts.propose / 2000
        wanted = {v.address for v in state.validators.validators}
        awaited = compute_awaited_contributors(wanted, self._last_contributors, self.key.address)
        while not awaited <= self.contributions.get(state.height, {}).keys():
            if self.engine.state is not state:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._contributions_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._contributions_changed.wait(), remaining)
        pool = self.contributions.get(state.height, {})
        return [c for address, c in pool.items() if address in wanted]

    async def _contribute(self, state: ChainState) -> None:
        """Aggregate mode: train from the new global model and announce a signed contribution."""
        assert self.learning is not None
        early = self._early
        weights = None
        if early is not None and (early[0], early[1]) == (state.height, state.model_hash):
            try:
                weights = await early[2]
            except Exception as error:  # the early run is an optimisation: train the usual way
                log.debug("early contribution unusable: %s", error)
        if weights is None:
            if not await self._model_ready() or self.engine.state is not state:
                return
            try:
                weights = await self.learning.propose()
            except MLError as error:
                log.warning("no contribution this round: %s", error)
                return
        await self._store_weights(weights)
        unsigned = Contribution(
            state.chain_id,
            state.height,
            self.key.address,
            weights.weights_hash,
            self.learning.learner.samples,
            Signature(b""),
        )
        contribution = Contribution(
            unsigned.chain_id,
            unsigned.height,
            unsigned.validator,
            unsigned.weights_hash,
            unsigned.samples,
            self.key.sign(unsigned.sign_bytes()),
        )
        if self.engine.state is state:
            self._add_contribution(contribution)
            announcement = pb.ContributionAnnouncement(
                contribution=contribution_to_proto(contribution)
            )
            self.peers.gossip(
                pb.Envelope(contribution=announcement, weights=compute_inline_weights(weights))
            )

    # --- catch-up -----------------------------------------------------------------------------

    async def _sync(self, from_height: int) -> None:
        self._syncing = True
        try:
            peers = list(self.peers.peers)
            random.shuffle(peers)
            for peer in peers:
                try:
                    chunk: list[CommitReceived] = []
                    verifying: deque[asyncio.Task[None]] = deque()  # chunks, oldest first
                    async for batch in peer.get_blocks(from_height):
                        for item in batch.blocks:
                            block = block_from_proto(item.block)
                            commit = commit_from_proto(item.commit)
                            chunk.append(CommitReceived(block, commit))
                            from_height = block.height + 1
                        if len(chunk) >= SYNC_CHUNK:
                            while len(verifying) >= SYNC_CHUNKS_VERIFYING:
                                await verifying.popleft()
                            previous = verifying[-1] if verifying else None
                            verifying.append(
                                asyncio.create_task(self._enqueue_synced(chunk, previous))
                            )
                            chunk = []
                    previous = verifying[-1] if verifying else None
                    await self._enqueue_synced(chunk, previous)
                    # Stay "syncing" until the engine has applied what was streamed, so that a
                    # message from the tip meanwhile does not start a second, duplicate stream.
                    await self._await_engine_height(from_height - 1)
                    log.debug("synced to height %d from %s", from_height - 1, peer.address)
                    break
                except (grpc.aio.AioRpcError, WireError) as error:
                    log.debug("sync from %s failed: %s", peer.address, error)
        finally:
            self._syncing = False

    async def _enqueue_synced(
        self, chunk: list[CommitReceived], previous: asyncio.Task[None] | None
    ) -> None:
        """Hand synced blocks to the engine after the ``previous`` chunk, their commit signatures
        verified in a worker process first (the engine checks them again, from its cache).

        A short chunk, such as the few blocks a validator that fell behind needs, goes straight
        to the engine, which verifies it: starting the worker processes takes seconds on a
        loaded machine, and a validator that waits for them misses its proposer turn.
        """
        if not chunk:
            if previous is not None:
                await previous
            return
        await self._await_engine_height(chunk[-1].block.height - SYNC_WINDOW)
        if len(chunk) >= SYNC_CHUNK:
            self.verifier.remember(await self._verify_in_workers(chunk))
        if previous is not None:
            await previous
        for event in chunk:
            self.events.put_nowait(event)

    async def _verify_in_workers(
        self, chunk: list[CommitReceived]
    ) -> list[tuple[PublicKey, bytes, Signature]]:
        """The valid commit signatures of ``chunk``, checked in the worker processes."""
        state = self.engine.state
        triples = []
        for event in chunk:
            for sig in event.commit.signatures:
                bond = state.bonds.get(sig.validator)
                if bond is not None:
                    message = event.commit.get_sign_bytes(state.chain_id, sig)
                    triples.append((bond.public_key, message, sig.signature))
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._verifiers, compute_valid_signatures, triples)
        except BrokenProcessPool:
            log.warning("signature worker died; the engine verifies this chunk itself")
            broken, self._verifiers = self._verifiers, create_verifier_pool()
            broken.shutdown(wait=False, cancel_futures=True)
            return []

    async def _await_engine_height(self, height: int) -> None:
        """Until the engine reaches ``height``, or makes no progress for a second."""
        while self.engine.state.height < height:
            self._progress.clear()
            try:
                await asyncio.wait_for(self._progress.wait(), 1.0)
            except TimeoutError:
                return

    # --- incoming (called by the services) --------------------------------------------------

    # Retransmissions are not filtered here: gossip resends a message exactly because its first
    # delivery may have been lost or unusable, and the engine drops duplicates cheaply (cached
    # signature checks, one tally entry per validator and block).

    def receive_vote(self, vote: SignedVote) -> None:
        """A vote from a peer."""
        label = "prevote" if vote.vote.vote_type == VoteType.PREVOTE else "precommit"
        self.metrics.votes.labels(type=label).inc()
        self.events.put_nowait(VoteReceived(vote))

    def receive_proposal(self, proposal: SignedProposal, weights: bytes = b"") -> None:
        """A proposal from a peer, perhaps with the weights its block names."""
        self.events.put_nowait(ProposalReceived(proposal))
        if weights and self._is_signed_by_round_proposer(proposal):
            self._receive_weights(proposal.block.header.model_hash, weights)

    def _is_signed_by_round_proposer(self, signed: SignedProposal) -> bool:
        """True for a proposal of this height signed by its round's proposer (the engine checks
        the same signature next, from the verifier's cache)."""
        proposal = signed.proposal
        if proposal.height != self.engine.height or proposal.round < 0:
            return False
        if signed.block.hash != proposal.block_hash:
            return False
        proposer = self.engine.validators.get_validator(self.engine.get_proposer(proposal.round))
        return proposer is not None and self.verifier.is_valid(
            proposer.public_key, proposal.sign_bytes(), signed.signature
        )

    def _receive_weights(self, weights_hash: Hash, data: bytes) -> None:
        """Weights pushed beside a message whose signature checked (the Peer service bounds
        their size); kept once their hash checks."""
        if (
            self.learning is None
            or weights_hash in self._arriving_weights
            or weights_hash in self._unstored_weights
            or self.store.has_weights(weights_hash)
        ):
            return
        task = self._spawn(self._keep_weights(weights_hash, data))
        self._arriving_weights[weights_hash] = task
        task.add_done_callback(lambda _: self._arriving_weights.pop(weights_hash, None))

    async def _keep_weights(self, weights_hash: Hash, data: WeightsBytes) -> bool:
        """Keep weights that fit the task's model and have ``weights_hash``; False (and counted
        as rejected) when they do not.

        Kept weights are usable at once and written in the background. The one store thread
        writes in order, so a block naming them (decided only after they were checked here) is
        never written before them.
        """
        assert self.learning is not None
        if not await self.learning.verify(data, weights_hash):
            self.metrics.rejected.labels(reason="weights").inc()
            return False
        self._unstored_weights[weights_hash] = data
        write = self._spawn(self._io_run(self.store.put_weights, weights_hash, [data]))
        write.add_done_callback(lambda task: self._forget_unstored(weights_hash, task))
        return True

    def _forget_unstored(self, weights_hash: Hash, write: asyncio.Task[Any]) -> None:
        """Drop weights from memory once written; weights whose write failed stay usable here
        (the store is failing: the block write that follows will stop the node)."""
        if not write.cancelled() and write.exception() is not None:
            log.error("weights %s were not stored: %s", weights_hash.hex()[:12], write.exception())
            return
        self._unstored_weights.pop(weights_hash, None)

    def receive_evidence(self, evidence: DuplicateVoteEvidence) -> None:
        """Evidence from a peer."""
        self.events.put_nowait(EvidenceReceived(evidence))

    def receive_contribution(self, contribution: Contribution, weights: bytes = b"") -> None:
        """A contribution for the current model (or the next), perhaps with its weights; its
        signature is checked before anything else."""
        state = self.engine.state
        member = state.validators.get_validator(contribution.validator)
        if member is None:
            raise ValueError("contribution from a non-validator")
        if not is_valid_signature(
            member.public_key, contribution.sign_bytes(), contribution.signature
        ):
            raise ValueError("contribution signature is invalid")
        if contribution.chain_id != state.chain_id:
            raise ValueError(f"contribution is for chain {contribution.chain_id!r}")
        if contribution.samples <= 0:
            raise ValueError("contribution has no samples")
        if state.height <= contribution.height <= state.height + 1:
            self._add_contribution(contribution)
            if weights:
                self._receive_weights(contribution.weights_hash, weights)
        # otherwise it is for a model long replaced (or far ahead): not an error, not kept

    def _add_contribution(self, contribution: Contribution) -> None:
        self.contributions.setdefault(contribution.height, {})[contribution.validator] = (
            contribution
        )
        self._contributions_changed.set()

    def submit_tx(self, signed: SignedTx) -> bytes:
        """A transaction into the bounded mempool, gossiped on first sight."""
        tx = signed.tx
        if tx.chain_id != self.engine.state.chain_id:
            raise ValueError(f"transaction is for chain {tx.chain_id!r}")
        if not is_valid_signature(tx.sender, tx.sign_bytes(), signed.signature):
            raise ValueError("transaction signature is invalid")
        tx_hash = signed.hash()
        if tx_hash in self.mempool:
            return tx_hash
        if len(self.mempool) >= MAX_MEMPOOL:
            raise ValueError("mempool is full")
        self.mempool[tx_hash] = signed
        self.peers.broadcast("SubmitTx", tx_to_proto(signed))
        return tx_hash

    def get_status(self) -> pb.StatusResponse:
        """What ``learnchain query status`` shows: the last block written to the store."""
        state = self.committed
        return pb.StatusResponse(
            chain_id=state.chain_id,
            node_id=self.key.address.hex(),
            height=state.height,
            latest_block_hash=state.last_block_hash,
            model_hash=state.model_hash,
            peers=self.peers.connected,
            syncing=self._syncing,
            moniker=self.config.moniker,
            round=self.engine.round,
            step=int(self.engine.step),
        )


class _Start:
    """The first event: Engine.start()."""


async def run_node(home: Path) -> None:
    """Run a node until SIGINT or SIGTERM."""
    node = Node(home)
    setup_logging(node.config.log_format, node.config.log_level)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await node.start()
        await stop.wait()
    finally:
        await node.stop()
