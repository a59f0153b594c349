"""Real ``learnchain start`` processes on loopback: the one harness behind ``learnchain demo``,
the end-to-end tests and the benchmarks.

A ``LocalCluster`` makes its homes with ``learnchain testnet``, changes their configuration with
``learnchain config set`` (as a user would), starts each node as a separate process with its log
in the testnet directory, and answers questions over gRPC; ``cluster[i]`` is node ``i``. Used as
a context manager it stops every process and closes every channel and log file it opened.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

import grpc

from learnchain.consensus.messages import Block
from learnchain.ml.config import TaskConfig
from learnchain.node.home.files import read_config
from learnchain.node.home.testnet import compute_endpoint, find_free_base_port
from learnchain.node.libs.harness import HARNESS_ENV
from learnchain.proto import learnchain_pb2 as pb
from learnchain.proto import learnchain_pb2_grpc as pb_grpc
from learnchain.proto.wire import block_from_proto

STOP_SECONDS = 20  # SIGTERM, then SIGKILL after this long


class ClusterError(RuntimeError):
    """A node did not come up, died, or the chain did not get where it was awaited."""


def run_learnchain(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the ``learnchain`` command line in a separate process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "learnchain", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def check_learnchain(*args: str) -> str:
    """Run the command line; its output, or ClusterError with what it said (without the
    ``Error: `` a command puts before its message, which whoever reports it adds again)."""
    result = run_learnchain(*args)
    if result.returncode != 0:
        raise ClusterError((result.stderr or result.stdout).strip().removeprefix("Error: "))
    return result.stdout


def send_hellos(address: str, requests: Iterable[pb.HelloRequest]) -> dict[str, int]:
    """Say each Hello to the node at ``address`` in turn (a flood, for tests and benches); how
    many answers of each status code."""
    codes: dict[str, int] = {}
    with grpc.insecure_channel(address) as channel:
        peer = pb_grpc.PeerStub(channel)
        for request in requests:
            try:
                peer.Hello(request, timeout=10)
                code = "OK"
            except grpc.RpcError as error:
                code = error.code().name
            codes[code] = codes.get(code, 0) + 1
    return codes


def find_children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = stat.read_text().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            continue
        if parent == str(pid):
            children.append(int(stat.parent.name))
    return children


def rss_mb(pid: int) -> float:
    """A process's resident memory in MB (Linux /proc; 0 when it is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0.0
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class LocalNode:
    """One node of a cluster: its home, its process and its gRPC answers."""

    def __init__(
        self,
        root: Path,
        index: int,
        address: str,
        own_session: bool = False,
        launcher: Sequence[str] = (),
        log_dir: Path | None = None,
    ) -> None:
        self.index = index
        self.own_session = own_session
        self.launcher = tuple(launcher)  # a command prefix, e.g. ("ip", "netns", "exec", NS)
        self.environment: dict[str, str] = {}  # added to the process's environment
        self.home = root / f"node{index}"
        self.address = address
        self.log_path = (log_dir or root) / f"node{index}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._channel: grpc.Channel | None = None
        self._query: pb_grpc.QueryStub | None = None

    # --- configuration and process ------------------------------------------------------------

    def configure(self, key: str, value: str) -> None:
        """``learnchain config set KEY VALUE --home`` this node's home."""
        check_learnchain("config", "set", key, value, "--home", str(self.home))

    def start(self) -> None:
        """``learnchain start --home`` this node's home, in its own process (and session, when
        ``own_session``: Ctrl-C in a terminal then reaches only the harness, which stops the
        nodes itself)."""
        if self._log is None:
            self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*self.launcher, sys.executable, "-m", "learnchain", "start", "--home", str(self.home)],
            env={**os.environ, **self.environment, HARNESS_ENV: str(os.getpid())},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=self.own_session,
        )

    @property
    def pid(self) -> int:
        """The process id."""
        if self.process is None:
            raise ClusterError(f"node{self.index} is not running")
        return self.process.pid

    def is_running(self) -> bool:
        """True while the process lives."""
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL (a crash)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)
            self.process = None

    def pause(self) -> None:
        """SIGSTOP the node and its child processes (a hung machine: connections stay open,
        nothing answers)."""
        self._signal_tree(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT what ``pause`` stopped."""
        self._signal_tree(signal.SIGCONT)

    def rss_mb(self) -> float:
        """The process's resident memory in MB (0 when it is not running)."""
        return 0.0 if self.process is None else rss_mb(self.process.pid)

    def _signal_tree(self, sig: signal.Signals) -> None:
        for pid in [self.pid, *find_children(self.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    @property
    def metrics_url(self) -> str:
        """The Prometheus endpoint in the node's config.toml."""
        address = read_config(self.home).metrics
        if not address:
            raise ClusterError(f"node{self.index} serves no metrics")
        return f"http://{address}/metrics"

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the log."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    def close(self) -> None:
        """Close the channel and the log file (the process is the cluster's to stop)."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
            self._query = None
        if self._log is not None:
            self._log.close()
            self._log = None

    # --- questions over gRPC ------------------------------------------------------------------

    @property
    def query(self) -> pb_grpc.QueryStub:
        """The Query stub (one channel per node, closed by ``close``; with the node's own
        certificate when it serves mutual TLS)."""
        if self._query is None:
            from learnchain.node.home.files import read_config
            from learnchain.node.home.tls import read_tls_files

            self._channel = (
                read_tls_files(self.home).open_channel(self.address)
                if read_config(self.home).tls
                else grpc.insecure_channel(self.address)
            )
            self._query = pb_grpc.QueryStub(self._channel)
        return self._query

    def status(self, timeout: float = 5) -> pb.StatusResponse | None:
        """The node's status, or None while it does not answer."""
        try:
            response: pb.StatusResponse = self.query.Status(pb.StatusRequest(), timeout=timeout)
        except grpc.RpcError:
            return None
        return response

    def height(self) -> int:
        """The committed height (-1 while the node does not answer)."""
        status = self.status()
        return -1 if status is None else int(status.height)

    def block_with_commit(self, height: int) -> pb.BlockWithCommit:
        """The block at ``height`` and its commit, as this node stores them."""
        response: pb.BlockWithCommit = self.query.GetBlock(
            pb.BlockRequest(height=height), timeout=5
        )
        return response

    def block(self, height: int) -> Block:
        """The block at ``height``."""
        return block_from_proto(self.block_with_commit(height).block)

    def block_hash(self, height: int) -> bytes:
        """The hash of the block at ``height``."""
        return self.block(height).hash

    def fetch_model(self, model_hash: bytes = b"") -> bytes:
        """Weights from this node (the current model when no hash is given)."""
        stream = self.query.Model(pb.FetchWeightsRequest(weights_hash=model_hash), timeout=60)
        return b"".join(chunk.data for chunk in stream)


class LocalCluster:
    """N validators made by ``learnchain testnet``, each started as its own process."""

    def __init__(
        self,
        root: Path,
        validators: int,
        *testnet_args: str,
        base_port: int | None = None,
        spare_ports: int = 0,
        own_sessions: bool = False,
        starting_ip: str = "",
        launcher: Callable[[int], Sequence[str]] | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self.root = root
        self.log_dir = log_dir  # the logs' folder when not ROOT (e.g. ROOT's disk will fill up)
        self.count = validators
        # Separate sessions cost throughput where the kernel groups CPU time by session
        # (sched_autogroup): about a third of the 16-validator commit rate (bench/README.md).
        self.own_sessions = own_sessions
        # Node I at STARTING_IP + I (hosts of their own, e.g. network namespaces), else on
        # loopback; each process searches its own port range first, so that concurrent clusters
        # rarely collide.
        self.starting_ip = starting_ip
        self.launcher = launcher
        self.base_port = base_port or (
            26656
            if starting_ip
            else find_free_base_port(
                validators + spare_ports, start=30000 + os.getpid() % 1000 * 20, step=37
            )
        )
        metrics_base_port = find_free_base_port(validators, start=self.base_port + 400, step=29)
        check_learnchain(
            "testnet",
            *("--validators", str(validators), "--output-dir", str(root)),
            *("--base-port", str(self.base_port), "--metrics-base-port", str(metrics_base_port)),
            *(("--starting-ip", starting_ip) if starting_ip else ()),
            *testnet_args,
        )
        self._nodes: dict[int, LocalNode] = {}

    def __getitem__(self, i: int) -> LocalNode:
        node = self._nodes.get(i)
        if node is None:
            node = self._nodes[i] = LocalNode(
                self.root,
                i,
                self.get_address(i),
                self.own_sessions,
                () if self.launcher is None else self.launcher(i),
                self.log_dir,
            )
        return node

    def get_address(self, i: int) -> str:
        """Node ``i``'s HOST:PORT."""
        return compute_endpoint(i, self.base_port, starting_ip=self.starting_ip)

    def configure_all(
        self, key: str, value: str | Callable[[int], str], nodes: Iterable[int] | None = None
    ) -> None:
        """The same setting on every validator (or on ``nodes``); ``value(i)`` per node."""
        for i in range(self.count) if nodes is None else nodes:
            self[i].configure(key, value if isinstance(value, str) else value(i))

    def set_task(self, **changes: object) -> TaskConfig:
        """Change the learning task in every home's genesis (before the first start), with the
        initial model's and the task's hashes to match, as an operator editing genesis.json
        would; the new task."""
        from learnchain.node.home.files import compute_app_hash, read_genesis, write_genesis
        from learnchain.node.home.testnet import compute_initial_model_hash

        genesis = read_genesis(self[0].home)
        task = dataclasses.replace(genesis.task, **changes)  # type: ignore[arg-type]
        changed = dataclasses.replace(
            genesis,
            task=task,
            genesis=dataclasses.replace(
                genesis.genesis,
                initial_model_hash=compute_initial_model_hash(task),
                app_hash=compute_app_hash(task),
            ),
        )
        for i in range(self.count):
            write_genesis(self[i].home, changed)
        return task

    def init_joiner(self, i: int, *init_args: str) -> LocalNode:
        """``learnchain init`` a home ``node{i}`` that joins this chain (fetching the genesis)."""
        joiner = self[i]
        check_learnchain(
            "init",
            *("--home", str(joiner.home), "--moniker", f"node{i}"),
            *("--genesis-from", self[0].address),
            *("--peers", ",".join(self[v].address for v in range(self.count))),
            *("--listen", joiner.address),
            *init_args,
        )
        return joiner

    def start_all(self) -> None:
        """Start every validator."""
        for i in range(self.count):
            self[i].start()

    def check_alive(self) -> None:
        """Raise ClusterError with the log's tail when a started node has exited."""
        for node in self._nodes.values():
            if node.process is not None and node.process.poll() is not None:
                raise ClusterError(
                    f"node{node.index} exited with code {node.process.returncode}:\n"
                    + node.log_tail()
                )

    def wait_for(self, nodes: Iterable[int], height: int, timeout: float = 180) -> None:
        """Until every node in ``nodes`` has committed ``height``; ClusterError (with the logs'
        tails) after ``timeout`` seconds or when a node dies."""
        nodes = list(nodes)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self[i].height() >= height for i in nodes):
                return
            self.check_alive()
            time.sleep(0.2)
        tails = {i: self[i].log_tail() for i in nodes}
        heights = [self[i].height() for i in nodes]
        raise ClusterError(f"height {height} not reached: {heights}\n{tails}")

    def stop_all(self) -> None:
        """SIGTERM every node; SIGKILL what has not stopped within ``STOP_SECONDS``."""
        running = [node for node in self._nodes.values() if node.process is not None]
        for node in running:
            assert node.process is not None
            if node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)  # all at once, then wait for each
        deadline = time.monotonic() + STOP_SECONDS
        for node in running:
            node.stop(timeout=max(0.1, deadline - time.monotonic()))

    def close(self) -> None:
        """Stop every node and close every channel and log file."""
        self.stop_all()
        for node in self._nodes.values():
            node.close()

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
