"""A validator that trains in a process of its own (config.toml ``trainer = "process"``) keeps
voting when that process is killed mid-training: the round goes on without its contribution,
the failure is counted, and the next round trains in a fresh process."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from learnchain.node.cluster import LocalCluster

pytestmark = pytest.mark.e2e


def find_training_process(parent: int) -> int | None:
    """The training process among ``parent``'s children."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == parent and b"training_worker" in command:
            return int(entry.name)
    return None


def read_cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def read_counter(url: str, name: str) -> float:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_a_killed_training_process_costs_one_contribution_not_the_validator(
    tmp_path: Path,
) -> None:
    with LocalCluster(
        tmp_path / "net", 3, "--task-param", "local_epochs=40", "--plateau-rounds", "0"
    ) as cluster:
        cluster.configure_all("trainer", "process")
        cluster.start_all()
        cluster.wait_for([0, 1, 2], 2, timeout=180)
        node = cluster[1]
        status = node.status()
        assert status is not None
        address = bytes.fromhex(status.node_id)
        deadline = time.monotonic() + 120
        killed = None
        while killed is None and time.monotonic() < deadline:
            child = find_training_process(node.pid)
            if child is not None:
                before = read_cpu_ticks(child)
                time.sleep(0.3)
                if read_cpu_ticks(child) - before > 10:  # training, not waiting for a request
                    os.kill(child, signal.SIGKILL)
                    killed = child
        assert killed is not None, "the training process never trained"
        killed_at = node.height()
        failures = "learnchain_learning_training_failures_total"
        while read_counter(node.metrics_url, failures) < 1:
            assert time.monotonic() < deadline, node.log_tail()
            time.sleep(0.5)
        cluster.wait_for([0, 1, 2], killed_at + 4, timeout=180)
        later = range(killed_at + 1, killed_at + 5)
        signed = [
            address in {s.validator for s in node.block_with_commit(h).commit.signatures}
            for h in later
        ]
        assert all(signed), signed  # it kept voting
        contributed = [
            address in {c.validator for c in cluster[0].block(h).contributions} for h in later
        ]
        assert any(contributed), contributed  # and trained again, in a fresh process
        assert find_training_process(node.pid) not in (None, killed)
        assert node.is_running()
