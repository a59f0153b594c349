"""A validator whose learner runs in a process of its own (config.toml ``trainer = "process"``)
keeps voting when that process is killed mid-training, runs out of memory, or dies evaluating a
proposal: the round goes on without its contribution (or its verdict), the failure is counted,
and the next request runs in a fresh process."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from learnchain.node.localnet.cluster import LocalCluster
from tests.e2e.chain_checks import read_agreed_updates

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


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


def read_counter(url: str, name: str, label: str = "") -> float:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and label in line
    )


def test_a_killed_training_process_costs_one_contribution_not_the_validator(
    tmp_path: Path,
) -> None:
    with LocalCluster(
        tmp_path / "net", 3, "--task-param", "local_epochs=200", "--plateau-rounds", "0"
    ) as cluster:
        cluster.configure_all("trainer", "process")
        cluster.start_all()
        cluster.wait_for([0, 1, 2], 2, timeout=180)
        node = cluster[1]
        status = node.status()
        assert status is not None
        address = bytes.fromhex(status.node_id)
        deadline = time.monotonic() + 120
        failures = "learnchain_learning_training_failures_total"
        killed = None
        # a kill between two trainings is no failure: kill again until one lands mid-training
        while read_counter(node.metrics_url, failures) < 1:
            assert time.monotonic() < deadline, node.log_tail()
            child = find_training_process(node.pid)
            if child is not None:
                before = read_cpu_ticks(child)
                time.sleep(0.3)
                if read_cpu_ticks(child) - before > 10:  # training, not waiting for a request
                    os.kill(child, signal.SIGKILL)
                    killed = child
                    time.sleep(1)
        assert killed is not None
        killed_at = node.height()
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


def test_validators_that_train_through_a_two_process_torchrun_job_commit_updates(
    tmp_path: Path,
) -> None:
    with LocalCluster(tmp_path / "net", 2, "--training-heights", "3") as cluster:
        cluster.configure_all("trainer", "torchrun")  # trainer_processes: 2 (gloo, DDP)
        cluster.start_all()
        cluster.wait_for([0, 1], 4, timeout=300)
        updated = read_agreed_updates(cluster, range(2))
        assert len(updated) >= 2, updated
        # every contribution came out of a torchrun job: the only way these validators train
        assert any(len(cluster[0].block(h).contributions) == 2 for h in updated)
        failures = "learnchain_learning_training_failures_total"
        assert read_counter(cluster[0].metrics_url, failures) == 0


def test_a_learner_process_out_of_memory_or_killed_evaluating_costs_a_round_not_the_validator(
    tmp_path: Path,
) -> None:
    greedy = tmp_path / "greedy"  # the first training to find it asks for 8 GiB, once
    fragile = tmp_path / "fragile"  # the first evaluation to find it kills its process, once
    greedy.touch()
    fragile.touch()
    task = ("--task", "tests.node.test_training_process:GreedyTask")
    params = ("--task-param", f"greedy={greedy}", "--task-param", f"fragile={fragile}")
    with LocalCluster(tmp_path / "net", 3, *task, *params, "--plateau-rounds", "0") as cluster:
        cluster.configure_all("trainer", "process")
        cluster.configure_all("trainer_memory_mb", "3000")
        cluster.start_all()
        cluster.wait_for([0, 1, 2], 6, timeout=240)
        assert not greedy.exists() and not fragile.exists()
        failures = "learnchain_learning_training_failures_total"
        for reason in ('reason="error"', 'reason="crash"'):  # out of memory; killed evaluating
            failed = [i for i in range(3) if read_counter(cluster[i].metrics_url, failures, reason)]
            assert len(failed) == 1, (reason, failed)
        failed = [i for i in range(3) if read_counter(cluster[i].metrics_url, failures, "error")]
        node = cluster[failed[0]]
        status = node.status()
        assert status is not None
        address = bytes.fromhex(status.node_id)
        top = cluster[0].height()
        contributed = [
            address in {c.validator for c in cluster[0].block(h).contributions}
            for h in range(2, top + 1)
        ]
        assert any(contributed), contributed  # it trained again after running out of memory
        assert all(cluster[i].is_running() for i in range(3))  # the validators evaluate elsewhere
