"""Real ``learnchain start`` processes on loopback, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc

from node.testnet import find_free_base_port
from proto import learnchain_pb2 as pb
from proto import learnchain_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[2]


def learnchain(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "node.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


class Cluster:
    """N validators made by ``learnchain testnet`` and started as separate processes."""

    def __init__(self, root: Path, validators: int, *extra: str, spare_ports: int = 0) -> None:
        self.root = root
        self.count = validators
        self.base_port = find_free_base_port(
            validators + spare_ports, start=30000 + os.getpid() % 1000 * 20, step=37
        )
        created = learnchain(
            "testnet",
            "--validators",
            str(validators),
            "--output",
            str(root),
            "--base-port",
            str(self.base_port),
            *extra,
        )
        assert created.returncode == 0, created.stderr
        self.processes: dict[int, subprocess.Popen[bytes] | None] = dict.fromkeys(range(validators))

    def home(self, i: int) -> Path:
        return self.root / f"node{i}"

    def address(self, i: int) -> str:
        return f"127.0.0.1:{self.base_port + i}"

    def start(self, i: int) -> None:
        log = (self.root / f"node{i}.log").open("ab")
        self.processes[i] = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "start", "--home", str(self.home(i))],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def init_joiner(self, i: int, *extra: str) -> None:
        """``learnchain init`` a home ``node{i}`` that joins this chain (fetching the genesis)."""
        created = learnchain(
            "init",
            "--home",
            str(self.home(i)),
            "--moniker",
            f"node{i}",
            "--genesis-from",
            self.address(0),
            "--peers",
            ",".join(self.address(v) for v in range(self.count)),
            "--listen",
            self.address(i),
            *extra,
        )
        assert created.returncode == 0, created.stderr
        self.processes[i] = None

    def start_all(self) -> None:
        for i in range(self.count):
            self.start(i)

    def kill(self, i: int) -> None:
        process = self.processes[i]
        if process is not None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            self.processes[i] = None

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process is not None:
                process.send_signal(signal.SIGTERM)
        for i, process in self.processes.items():
            if process is not None:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                self.processes[i] = None

    def is_running(self, i: int) -> bool:
        process = self.processes[i]
        return process is not None and process.poll() is None

    def stub(self, i: int) -> pb_grpc.QueryStub:
        return pb_grpc.QueryStub(grpc.insecure_channel(self.address(i)))

    def status(self, i: int) -> pb.StatusResponse | None:
        try:
            response: pb.StatusResponse = self.stub(i).Status(pb.StatusRequest(), timeout=5)
        except grpc.RpcError:
            return None
        return response

    def height(self, i: int) -> int:
        status = self.status(i)
        return -1 if status is None else int(status.height)

    def wait_for(self, nodes: list[int], height: int, timeout: float = 180) -> None:
        """Until every node in ``nodes`` has committed ``height``; fails with the logs' tails."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.height(i) >= height for i in nodes):
                return
            time.sleep(0.5)
        tails = {i: (self.root / f"node{i}.log").read_text()[-2000:] for i in nodes}
        raise AssertionError(
            f"height {height} not reached: {[self.height(i) for i in nodes]}\n{tails}"
        )

    def block_hash(self, i: int, height: int) -> bytes:
        item = self.stub(i).GetBlock(pb.BlockRequest(height=height), timeout=5)
        from node.wire import block_from_proto

        return block_from_proto(item.block).hash
