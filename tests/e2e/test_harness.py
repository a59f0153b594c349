"""Nodes end with the harness that started them: a demo or test killed by a timeout leaves no
node behind to hold the CPU (node/libs/harness.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

HARNESS = """
import sys, time
from pathlib import Path
from learnchain.node.localnet.cluster import LocalCluster
net = LocalCluster(Path(sys.argv[1]), 1, own_sessions=True)
net.start_all()
net.wait_for([0], 1, timeout=120)
print(net[0].pid, flush=True)
time.sleep(600)
"""


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = (
        Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}").exists() else "X"
    )
    return state not in ("Z", "X")


def test_a_killed_harness_takes_its_nodes_with_it(tmp_path: Path) -> None:
    harness = subprocess.Popen(
        [sys.executable, "-c", HARNESS, str(tmp_path / "net")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert harness.stdout is not None
    node = int(harness.stdout.readline())
    assert is_running(node)
    harness.kill()
    harness.wait()
    deadline = time.monotonic() + 30
    while is_running(node) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not is_running(node), "the node outlived its harness"
