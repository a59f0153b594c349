"""Learning at the pace of training, with real processes (docs/protocol.md §3.2): validators
whose local training takes longer than every consensus timeout still get every round's update
committed, with no empty block between; killing one mid-training costs a slower round, not the
chain; and every node agrees on every block."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from learnchain.node.localnet.cluster import ClusterError, LocalCluster
from learnchain.node.telemetry.logs import read_text_fields
from learnchain.proto import learnchain_pb2 as pb

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

VALIDATORS = 4
TIMEOUTS_MS = {"propose": "300", "prevote": "200", "precommit": "200", "commit": "200"}
ROUND_DEADLINE_S = 30


def wait_for_updates(net: LocalCluster, count: int, timeout: float) -> list[pb.HistoryEntry]:
    """Node0's history once it holds ``count`` model updates."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        net.check_alive()
        history = net[0].query.History(pb.HistoryRequest(from_height=1, limit=1000), timeout=10)
        if sum(e.model_updated for e in history.entries) >= count:
            return list(history.entries)
        time.sleep(0.5)
    raise ClusterError(f"fewer than {count} model updates within {timeout} s")


def training_seconds(log: Path) -> list[float]:
    """How long each contribution's training took on one node (its debug log)."""
    spans = []
    for line in log.read_text().splitlines():
        fields = read_text_fields(line)
        if " ml work " in line and fields["work"] in ("propose", "accept_and_train"):
            spans.append(float(fields["ended"]) - float(fields["started"]))
    return spans


def test_slow_learners_get_every_round_committed_and_survive_a_crash(tmp_path: Path) -> None:
    with LocalCluster(
        tmp_path / "net",
        VALIDATORS,
        *("--round-deadline", str(ROUND_DEADLINE_S), "--plateau-rounds", "0"),
    ) as net:
        net.set_task(hidden=4000, local_epochs=60)
        for name, value in TIMEOUTS_MS.items():
            net.configure_all(f"timeouts.{name}", value)
        net.configure_all("log_level", "debug")
        net.start_all()
        net.wait_for(range(VALIDATORS), 0, timeout=180)

        history = wait_for_updates(net, 3, timeout=240)
        assert all(e.model_updated for e in history), "every block is a learning round"
        slowest_timeout = max(int(v) for v in TIMEOUTS_MS.values()) / 1000
        assert min(training_seconds(net[1].log_path)) > 2 * slowest_timeout

        net[3].kill()  # mid-training: the others trained from the same model at the same time
        killed_at = time.monotonic()
        before = len([e for e in history if e.model_updated])
        history = wait_for_updates(net, before + 2, timeout=ROUND_DEADLINE_S * 3)
        assert time.monotonic() - killed_at < 2 * ROUND_DEADLINE_S
        assert all(e.model_updated for e in history)
        top = min(net[i].height() for i in range(3))
        for h in range(1, top + 1):
            assert len({net[i].block_hash(h) for i in range(3)}) == 1
