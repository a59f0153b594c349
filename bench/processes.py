"""What the benchmarks measure of a node process (its memory and CPU time); the processes
themselves come from ``node.cluster.LocalCluster``, the harness the tests and the demo use."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from learnchain.node.localnet.cluster import LocalCluster, rss_mb

__all__ = ["FASTEST_PACE", "cpu_seconds", "rss_mb", "training_testnet"]

# `learnchain testnet` flags for measuring the fastest pace: a block right after the last, even
# with nothing in it (the defaults rest between learning rounds and pause 1 s after a block).
FASTEST_PACE = ("--create-empty-blocks", "--commit-timeout", "0")


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


@contextmanager
def training_testnet(validators: int, warm_up_height: int) -> Iterator[LocalCluster]:
    """A default testnet (no empty blocks, a 1 s commit pace) that never stops training (the
    plateau rule off), started and past ``warm_up_height``; stopped on exit."""
    with (
        tempfile.TemporaryDirectory() as scratch,
        LocalCluster(Path(scratch) / "net", validators, "--plateau-rounds", "0") as net,
    ):
        net.start_all()
        net.wait_for(range(validators), warm_up_height, timeout=300)
        yield net
