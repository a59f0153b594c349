"""Real ``learnchain start`` processes for the benchmarks: start, watch, measure, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

import grpc

from proto import learnchain_pb2 as pb
from proto import learnchain_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[1]


def start_node(home: Path, log: IO[str] | int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """``learnchain start --home HOME`` as a separate process (its log to ``log``)."""
    return subprocess.Popen(
        [sys.executable, "-m", "node.cli", "start", "--home", str(home)],
        stdout=subprocess.DEVNULL,
        stderr=log,
        cwd=ROOT,
    )


def stop_nodes(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process, then SIGKILL what has not stopped within 20 s."""
    for p in processes:
        p.send_signal(signal.SIGTERM)
    for p in processes:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()


def make_height_reader(address: str) -> Callable[[], int]:
    """A function returning the node's committed height (-1 while it does not answer)."""
    stub = pb_grpc.QueryStub(grpc.insecure_channel(address))

    def height() -> int:
        try:
            return int(stub.Status(pb.StatusRequest(), timeout=2).height)
        except grpc.RpcError:
            return -1

    return height


def rss_mb(pid: int) -> float:
    """A process's resident memory in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process and its live children have used so far (Linux)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total
