"""The walk-throughs run as pasted: the README's quick start, and the blocks of the documentation's
"Run a local testnet by hand", "Join a testnet by staking" (without containers) and the stop line
are read from the pages themselves, so they cannot drift from what works, and run in one shell
from a fresh directory. The joiner stakes and unstakes after the testnet's training has ended, on
a chain that rests."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BY_HAND = ROOT / "docs" / "local-testnet.md"
JOINING = ROOT / "docs" / "join.md"
PORTS = (26656, 26657, 26658, 26659, 26700, 27656, 27657, 27658, 27659)  # what the blocks use


def read_block(page: Path, name: str) -> str:
    """The fenced block after ``<!-- tested-block: NAME -->`` on a page."""
    text = page.read_text()
    marker = f"<!-- tested-block: {name} -->\n```\n"
    start = text.index(marker) + len(marker)
    return text[start : text.index("\n```", start)] + "\n"


def is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def read_pids(folder: Path) -> list[int]:
    pids = folder / "testnet" / "pids"
    return [int(line) for line in pids.read_text().split()] if pids.exists() else []


def wait_for_exit(folder: Path, timeout: float) -> None:
    """Until every process the blocks started has ended (they stop on SIGTERM)."""
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{pid}").exists() for pid in read_pids(folder)):
        assert time.monotonic() < deadline, "a node did not stop on SIGTERM"
        time.sleep(0.2)


def stop_started_nodes(folder: Path) -> None:
    """Whatever the blocks started and did not stop (a failed run)."""
    for pid in read_pids(folder):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def run_in_shell(folder: Path, script: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """A block run by bash in ``folder``, where ``.venv`` is this test's environment."""
    if not (folder / ".venv").exists():
        (folder / ".venv").symlink_to(Path(sys.executable).parent.parent)
    return subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def check_ports_free() -> None:
    busy = [port for port in PORTS if not is_free(port)]
    assert not busy, f"the walk-throughs' ports {busy} are taken on this machine"


def test_the_readme_quick_start_runs_as_pasted(tmp_path: Path) -> None:
    check_ports_free()
    try:
        walked = run_in_shell(tmp_path, read_block(README, "quick-start"), timeout=300)
        assert walked.returncode == 0, walked.stdout[-4000:] + walked.stderr[-4000:]
        wait_for_exit(tmp_path, timeout=30)
    finally:
        stop_started_nodes(tmp_path)
    assert re.search(r"^height +10$", walked.stdout, re.MULTILINE), walked.stdout[-2000:]
    assert (tmp_path / "model.safetensors").stat().st_size > 0


def test_the_testnet_and_joining_walk_throughs_run_as_pasted(tmp_path: Path) -> None:
    check_ports_free()
    script = read_block(BY_HAND, "by-hand") + read_block(JOINING, "join")
    try:
        walked = run_in_shell(tmp_path, script, timeout=480)
        (tmp_path / "walkthrough.log").write_text(walked.stdout + "\n--- stderr\n" + walked.stderr)
        assert walked.returncode == 0, walked.stdout[-4000:] + walked.stderr[-4000:]
        stopped = run_in_shell(tmp_path, read_block(BY_HAND, "stop"), timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        wait_for_exit(tmp_path, timeout=30)
    finally:
        stop_started_nodes(tmp_path)
    out = walked.stdout
    assert '"height": 10' in out, "query block 10 --wait waited for height 10"
    assert re.search(r"^training +ended \(budget\)$", out, re.MULTILINE)
    assert (tmp_path / "model.safetensors").stat().st_size > 0
    assert "None" not in out and "['" not in out, "text output has no Python reprs"
    # the joiner staked and then unstaked on the resting chain, each taking effect by itself
    stake_line = next(line for line in out.splitlines() if line.startswith("validator_from_height"))
    assert stake_line.split()[-1].isdigit()
    assert "joiner" in out.split("validators for height")[-1], "query validators shows monikers"
    account = out.split("address ")[-1]
    assert re.search(r"^unbonding +2000$", account, re.MULTILINE)
    assert re.search(r"^bonded +0$", account, re.MULTILINE)
    for i in range(4):
        log = (tmp_path / "testnet" / f"node{i}.log").read_text()
        assert "Traceback" not in log and "stopped at height" in log
