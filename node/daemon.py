"""The validator daemon: creates a node's components, wires them together, starts and stops.

Each responsibility lives in its own component (as CometBFT splits a node into reactors):

- ``ConsensusDriver`` feeds the engine and carries out its actions (gossip and vote relay),
- ``BlockExecutor`` writes decided blocks and tells the commit listeners,
- ``BlockSync`` catches up from peers,
- ``Mempool`` holds transactions,
- ``WeightsPool`` gets, keeps, retains and prunes model weights,
- ``LearningApp`` is the application behind consensus (ABCI++-style), with its
  ``ContributionPool``,
- ``PeerManager`` dials validators and answers Hellos,
- ``PeerService`` and ``QueryService`` serve gRPC over small protocols.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from learnchain.consensus.crypto import SignatureVerifier
from learnchain.consensus.engine import Engine
from learnchain.consensus.events import CommitBlock
from learnchain.consensus.messages import SignedTx
from learnchain.consensus.state import ChainState, compute_genesis_state
from learnchain.consensus.upgrades import UpgradeNeeded
from learnchain.ml.errors import MLError, PluginImportError, PretrainedError, TaskError
from learnchain.ml.plugins import add_plugin_folders
from learnchain.node.chain.block_executor import BlockExecutor
from learnchain.node.chain.block_sync import BlockSync
from learnchain.node.chain.commit_log import CommitLog
from learnchain.node.chain.consensus_driver import ConsensusDriver
from learnchain.node.chain.engine_inbox import EngineInbox
from learnchain.node.chain.mempool import Mempool
from learnchain.node.chain.misbehaviour import get_misbehaviour
from learnchain.node.chain.upgrade_plugins import UpgradePluginError, load_installed_upgrades
from learnchain.node.chain.work_signal import WorkSignal
from learnchain.node.home.files import (
    CONFIG_FILE,
    DATA_DIR,
    GENESIS_FILE,
    ConfigError,
    NodeConfig,
    get_advertised_address,
    get_task_folders,
    read_config,
    read_genesis,
    read_key,
)
from learnchain.node.home.tls import NAME_OVERRIDE, TlsError, TlsFiles, read_tls_files
from learnchain.node.learning.contribution_pool import ContributionPool
from learnchain.node.learning.learning_app import LearningApp
from learnchain.node.p2p.peer_auth import compute_now_ms, make_fetch_request
from learnchain.node.p2p.peer_manager import PeerManager
from learnchain.node.p2p.peers import PeerSet, make_tls_channel_factory, open_plain_channel
from learnchain.node.rpc.chain_reader import ChainReader, WeightsReader
from learnchain.node.rpc.grpc_server import BindError, RunningServer, start_server
from learnchain.node.rpc.services import PeerService, QueryService
from learnchain.node.rpc.status import StatusReporter
from learnchain.node.store.store import Store
from learnchain.node.store.store_worker import StoreWorker
from learnchain.node.telemetry.logs import setup_logging
from learnchain.node.telemetry.metrics import ChainLabelled, Metrics
from learnchain.node.training.learning_worker import (
    InitialModelMismatch,
    LearningWorker,
    Trainer,
    compute_local_settings,
    load_learning_worker,
)
from learnchain.node.training.training_job import TrainingJob
from learnchain.node.training.training_process import TrainingProcess
from learnchain.node.weights.weights_pool import WeightsPool
from learnchain.node.weights.weights_problems import WeightsProblems

log = logging.getLogger("learnchain.node")


def read_node_tls(home: Path) -> TlsFiles:
    """The node's TLS files (``tls = true``); ConfigError naming a missing or bad one."""
    try:
        return read_tls_files(home)
    except TlsError as error:
        raise ConfigError(f"{home / 'config.toml'}: tls = true, but {error}") from None


def make_trainer(home: Path, config: NodeConfig, failures: ChainLabelled) -> Trainer | None:
    """Where this node trains (config.toml ``trainer``): in the learner's thread (None), in a
    supervised process, or as a torchrun job per round; failures counted in ``failures``."""

    def count(reason: str) -> None:
        failures.labels(reason=reason).inc()

    if config.trainer == "process":
        return TrainingProcess(home, config.trainer_memory_mb, count)
    if config.trainer == "torchrun":
        return TrainingJob(home, config.trainer_processes, config.trainer_memory_mb, count)
    return None


class NodeFailure(RuntimeError):
    """The node cannot go on (the message says why); it stops with a non-zero exit."""


class Node:
    """One validator (or full node) process: its components and their life cycle."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.config = read_config(home)
        self.genesis_file = read_genesis(home)
        self.key = read_key(home)
        self.tls = read_node_tls(home) if self.config.tls else None
        self.advertised = get_advertised_address(self.config)
        self.genesis_state = compute_genesis_state(self.genesis_file.genesis)
        try:
            self.known_upgrades = load_installed_upgrades()
        except UpgradePluginError as error:
            raise ConfigError(str(error)) from None
        self.store = Store(home / DATA_DIR / "chain.db")
        state = self.store.load_or_init_state(self.genesis_state)
        self.io = StoreWorker(self.store)
        self.verifier = SignatureVerifier()
        self.engine = Engine(
            state,
            self.key,
            self.config.timeouts,
            self.store.load_sign_state(),
            self.verifier,
            wait_for_work=not self.config.create_empty_blocks,
        )
        if state.height > 0:
            commit = self.store.get_commit(state.height)
            if commit is not None:
                self.engine.restore_last_commit(commit)
        self.metrics = Metrics(state.chain_id)
        self.executor = BlockExecutor(self.io, state)
        key, chain_id = self.key, state.chain_id
        self.peers = PeerManager(
            PeerSet(
                list(self.config.persistent_peers),
                lambda weights_hash: make_fetch_request(
                    key, chain_id, weights_hash, compute_now_ms()
                ),
                open_plain_channel
                if self.tls is None
                else make_tls_channel_factory(self.tls.channel_credentials(), [NAME_OVERRIDE]),
            ),
            state.chain_id,
            self.key,
            (self.advertised, self.config.listen),
            self.advertised,
            lambda: self.executor.committed.height,
        )
        self.inbox = EngineInbox(self.engine)
        self.sync = BlockSync(
            self.inbox,
            self.verifier,
            lambda: self.peers.peers.peers,
            on_caught_up=lambda: self.app.resume() if self.app is not None else None,
        )
        self.work = WorkSignal(
            self.inbox.submit,
            [lambda: len(self.mempool) > 0],
            self.config.create_empty_blocks_interval / 1000,
        )

        def admitted(signed: SignedTx) -> None:
            self.peers.broadcast_tx(signed)
            self.work.check()

        self.mempool = Mempool(state, self.verifier, admitted)
        self._tasks: list[asyncio.Task[None]] = []
        self._consensus: asyncio.Task[None] | None = None
        self.server: RunningServer | None = None
        self._peer_service: PeerService | None = None
        self.driver: ConsensusDriver | None = None
        self.app: LearningApp | None = None

    async def start(self) -> None:
        """Load the learner, create the components that need it, serve gRPC, start consensus."""
        config = self.config
        add_plugin_folders(get_task_folders(self.home, config))
        try:
            local = compute_local_settings(self.home, config)
        except TaskError as error:  # the device is not on this machine
            raise ConfigError(f"{self.home / CONFIG_FILE}: {error}") from None
        trainer = make_trainer(self.home, config, self.metrics.training_failures)
        try:
            learning = await asyncio.get_running_loop().run_in_executor(
                None,
                load_learning_worker,
                self.genesis_file.task,
                config.data,
                config.attack,
                self.genesis_state.model_hash,
                self.io.store.weights,
                local,
                trainer,
            )
        except PretrainedError as error:
            raise ConfigError(f"{self.home / CONFIG_FILE}: pretrained: {error}") from None
        except InitialModelMismatch as error:
            raise ConfigError(f"{self.home / GENESIS_FILE}: {error}") from None
        except PluginImportError as error:
            raise ConfigError(
                f"{self.home / GENESIS_FILE}: {error}; put the module's folder in task_path "
                f"({self.home / CONFIG_FILE}) or on PYTHONPATH"
            ) from None
        except TaskError as error:  # the genesis's task cannot be built here
            raise ConfigError(f"{self.home / GENESIS_FILE}: {error}") from None
        except MLError as error:  # the node's data file
            raise ConfigError(f"{self.home / CONFIG_FILE}: {error}") from None
        weights = self._create_weights_pool(learning)
        weights.problems = learning.problems = WeightsProblems(
            lambda what, reason: self.metrics.unusable_weights.labels(
                what=what, reason=reason
            ).inc()
        )
        self.app = app = LearningApp(
            learning,
            weights,
            ContributionPool(self.verifier),
            self.engine,
            self.key,
            config.train,
            config.timeouts.propose / 1000,
            lambda: self.sync.catching_up,
            self.peers.announce_contribution,
            self.work.check,
            self.metrics.report_own_evaluation,
            config.appraise,
        )
        self.work.add_source(app.has_work)
        self.driver = ConsensusDriver(
            self.engine,
            self.inbox,
            self.io,
            self.executor,
            app,
            self.peers,
            self.mempool.reap,
            self.sync.request,
            self.metrics,
            self.work,
            get_misbehaviour(self.home, config.byzantine),
        )
        self._add_commit_listeners(app, learning)
        await self._serve(app, self.driver)
        if config.metrics:
            self.metrics.serve(config.metrics)
        self._consensus = asyncio.create_task(self.driver.run())
        self._tasks.append(self._consensus)
        self.peers.add_validator_peers(self.executor.committed)
        self._tasks.append(asyncio.create_task(self.peers.announce()))
        app.on_commit(self.executor.committed)  # begin the current model's learning round
        log.info(
            "node %s (%s) listening on %s at height %d",
            config.moniker,
            self.key.address.hex()[:12],
            config.listen,
            self.engine.state.height,
        )
        plan = self.engine.state.upgrade_plan
        if self.known_upgrades or plan is not None:
            log.info(
                "upgrades this build carries: %s; scheduled: %s",
                ", ".join(self.known_upgrades) or "none",
                f"{plan.name} at height {plan.height}" if plan is not None else "none",
            )

    def _create_weights_pool(self, learning: LearningWorker) -> WeightsPool:
        retain = self.config.retain_models
        return WeightsPool(
            self.io,
            learning,
            lambda: self.peers.peers.peers,
            lambda: self.metrics.rejected.labels(reason="weights").inc(),
            self.store.get_recent_model_hashes(retain) or [self.executor.committed.model_hash],
            retain,
        )

    def _add_commit_listeners(self, app: LearningApp, learning: LearningWorker) -> None:
        """After each written block, in this order: metrics and logs, mempool, weights,
        peers, learning."""
        commit_log = CommitLog(
            self.metrics,
            lambda: learning.busy_seconds,
            self.key.address,
            lambda: self.executor.block_bytes,
        )
        self.executor.add_listener(commit_log.on_commit)

        def recheck_mempool(action: CommitBlock, _: ChainState) -> None:
            self.mempool.update(action.block, action.state)

        self.executor.add_listener(recheck_mempool)
        self.executor.add_listener(
            lambda action, _: app.weights.on_commit(
                action.state, app.weights_in_use, learning.fresh_writes
            )
        )
        self.executor.add_listener(lambda action, _: self.peers.add_validator_peers(action.state))
        self.executor.add_listener(
            lambda action, _: app.on_commit(action.state, action.commit.round)
        )

    async def _serve(self, app: LearningApp, driver: ConsensusDriver) -> None:
        """Serve Peer, Query, health and reflection on the listen address."""

        def refusals(reason: str) -> None:
            self.metrics.rejected.labels(reason=reason).inc()

        def committed() -> ChainState:
            return self.executor.committed

        genesis_json = (self.home / GENESIS_FILE).read_bytes()
        chain = ChainReader(self.io, committed, self.genesis_state, genesis_json)
        weights = WeightsReader(self.io, app.weights.is_public, app.weights.find_parts)
        status = StatusReporter(
            self.key.address,
            self.config.moniker,
            self.engine,
            committed,
            lambda: self.peers.peers.connected,
            lambda: self.sync.catching_up,
            self.genesis_file.task.metric.value,
            lambda: app.own_evaluation,
        )
        peer = PeerService(driver, app, self.mempool, self.peers, chain, weights, refusals)
        self._peer_service = peer
        self._watch(peer, app)
        query = QueryService(
            chain, weights, status.get_status, refusals, self.genesis_file.monikers
        )
        try:
            self.server = await start_server(
                self.config.listen,
                peer,
                query,
                refusals,
                None if self.tls is None else self.tls.server_credentials(),
            )
        except BindError as error:
            raise ConfigError(f"{self.home / 'config.toml'}: listen: {error}") from None

    def _watch(self, peer: PeerService, app: LearningApp) -> None:
        """The metrics read when scraped, and the byte counts of weights on the wire."""
        metrics = self.metrics
        metrics.peers.labels(direction="outbound").set_function(lambda: self.peers.peers.connected)
        metrics.peers.labels(direction="inbound").set_function(lambda: peer.inbound_streams)
        metrics.mempool_size.set_function(lambda: len(self.mempool))
        metrics.block_syncing.set_function(lambda: float(self.sync.catching_up))

        def count_weights_bytes(direction: str, size: int) -> None:
            metrics.weights_bytes.labels(direction=direction).inc(size)

        peer.count_weights_bytes = count_weights_bytes
        self.peers.peers.count_weights_bytes(count_weights_bytes)
        app.learning.observe_work = lambda work, seconds: metrics.work_seconds.labels(
            work=work
        ).observe(seconds)
        app.report_verdict = lambda result: metrics.updates.labels(result=result).inc()

    async def wait_for_failure(self) -> None:
        """Return only if consensus stopped on an error (a store that cannot write, most
        often): health says NOT_SERVING, then NodeFailure says why in one line."""
        assert self._consensus is not None
        try:
            await asyncio.shield(self._consensus)
        except UpgradeNeeded as error:
            log.error("halted at height %d: %s", self.executor.committed.height, error)
            if self.server is not None:
                await self.server.set_not_serving()
            raise NodeFailure(f"{self.home}: {error}") from error
        except Exception as error:
            log.error("consensus stopped", exc_info=error)
            if self.server is not None:
                await self.server.set_not_serving()
            raise NodeFailure(f"{self.home}: consensus stopped: {error}") from error

    async def _wait_for_inbound_streams(self, timeout: float) -> None:
        """Until the peers' Gossip calls the stopped server cancelled have ended: one still
        running when the event loop closes is cancelled again by asyncio, which gRPC logs as a
        traceback."""
        peer = self._peer_service
        deadline = asyncio.get_running_loop().time() + timeout
        while peer is not None and peer.inbound_streams > 0:
            if asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop serving and release everything."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)  # their ends, not logged
        if self.driver is not None:
            self.driver.close()
        if self.server is not None:
            await self.server.stop(grace=0.5)
            await self._wait_for_inbound_streams(timeout=2.0)
        await self.peers.close()
        if self.app is not None:
            self.app.close()
            self.app.weights.close()
            self.app.learning.close()
        self.sync.close()
        self.io.close()


async def run_node(home: Path) -> None:
    """Run a node until SIGINT or SIGTERM."""
    node = Node(home)
    setup_logging(node.config.log_format, node.config.log_level)
    stop = asyncio.Event()
    received: list[str] = []
    loop = asyncio.get_running_loop()

    def request_stop(sig: signal.Signals) -> None:
        received.append(sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, request_stop, sig)
    started = False
    try:
        await node.start()
        started = True
        stopping = asyncio.create_task(stop.wait())
        failing = asyncio.create_task(node.wait_for_failure())
        await asyncio.wait({stopping, failing}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        failing.cancel()
        if failing.done() and not failing.cancelled():
            failing.result()  # raises NodeFailure
    finally:
        if received:
            log.info("stopping on %s", received[0])
        await node.stop()
        await settle_remaining_tasks(timeout=1.0)
        if started:
            log.info("stopped at height %d", node.executor.committed.height)


async def settle_remaining_tasks(timeout: float) -> None:
    """Let what the stopped server and streams left running end by itself: gRPC's calls that
    the server cancelled finish a few loop turns later, and one that ``asyncio.run`` has to
    cancel at the end is logged by gRPC as an unhandled CancelledError traceback."""
    current = asyncio.current_task()
    remaining = [task for task in asyncio.all_tasks() if task is not current]
    if remaining:
        await asyncio.wait(remaining, timeout=timeout)
    # What still runs now is cancelled by asyncio.run; gRPC's report of that is noise.
    logging.getLogger("grpc._cython.cygrpc").setLevel(logging.CRITICAL)
