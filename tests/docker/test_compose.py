"""The docker-compose testnet with real containers (``make testnet-e2e``).

Four validator containers agree and train; a fifth joins by staking and then proposes and signs;
a stopped validator is not missed and catches up when started; ``testnet-down`` leaves nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from learnchain.node.localnet.cluster import run_learnchain

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]

PROJECT = "learnchain-e2e"
NODES = {f"node{i}": f"127.0.0.1:{26656 + i}" for i in range(4)} | {"joiner": "127.0.0.1:26664"}
VALIDATORS = ["node0", "node1", "node2", "node3"]


def run_testnet(command: str, timeout: float = 1800) -> str:
    """Run docker/testnet.sh as the make targets do; fail with its output."""
    done = subprocess.run(
        ["docker/testnet.sh", command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        # Training that never ends keeps blocks coming for the joining and stopping checks (by
        # default the testnet rests once training ends on a plateau).
        env={**os.environ, "COMPOSE_PROJECT": PROJECT, "PLATEAU_ROUNDS": "0"},
        check=False,
    )
    assert done.returncode == 0, f"testnet.sh {command}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def compose(*args: str) -> str:
    command = "docker compose" if _has_compose_v2() else "docker-compose"
    done = subprocess.run(
        [*command.split(), "-p", PROJECT, "-f", "docker/docker-compose.yml", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _has_compose_v2() -> bool:
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


def query(node: str, *args: str) -> Any:
    """``learnchain query ... --output json`` against a container's published port."""
    done = run_learnchain("query", *args, "--node", NODES[node], "--output", "json", timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def height(node: str) -> int:
    done = run_learnchain("query", "status", "--node", NODES[node], "--output", "json", timeout=30)
    return int(json.loads(done.stdout)["height"]) if done.returncode == 0 else -1


def wait_until(what: str, check: Callable[[], Any], timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(1)
    raise AssertionError(f"timed out waiting for: {what}\n{compose('logs', '--tail', '30')}")


def project_resources() -> list[str]:
    label = f"label=com.docker.compose.project={PROJECT}"
    found = []
    for kind in (["ps", "-a"], ["volume", "ls"], ["network", "ls"]):
        listed = subprocess.run(
            ["docker", *kind, "-q", "--filter", label], capture_output=True, text=True, check=True
        )
        found += listed.stdout.split()
    images = subprocess.run(
        ["docker", "images", "-q", "learnchain:latest"], capture_output=True, text=True, check=True
    )
    return found + images.stdout.split()


def measure_accuracy(model_file: Path | None) -> float:
    """An exported model's accuracy (None: the genesis model's) on the held-out digits test set,
    which no validator has."""
    from safetensors.torch import load

    from learnchain.ml.config import TaskConfig
    from learnchain.ml.data import load_digits_pool
    from learnchain.ml.tasks import get_task
    from learnchain.ml.training import evaluate_state

    _pool, test = load_digits_pool(0)
    task = get_task(TaskConfig())  # what `learnchain testnet` puts in the genesis
    state = (
        task.initial_model().state_dict() if model_file is None else load(model_file.read_bytes())
    )
    return evaluate_state(task, state, test).accuracy


@pytest.fixture(scope="module")
def network() -> Iterator[None]:
    run_testnet("down")
    run_testnet("up")
    try:
        yield
    finally:
        run_testnet("down")
        assert project_resources() == [], "testnet-down left containers, volumes or networks"


def test_the_four_validators_commit_the_same_blocks_and_the_model_improves(
    network: None, tmp_path: Path
) -> None:
    wait_until("height 8 everywhere", lambda: all(height(n) >= 8 for n in VALIDATORS))
    for h in range(1, 9):
        assert len({query(n, "block", str(h))["hash"] for n in VALIDATORS}) == 1, h
    stakes = {v["address"]: v["stake"] for v in query("node0", "validators")["validators"]}
    assert sorted(stakes.values()) == [1000] * 4
    # Old models are pruned beyond retain_models, so the baseline is the genesis model itself.
    latest = tmp_path / "latest.safetensors"
    done = run_learnchain("model", "export", "--node", NODES["node1"], "--output-file", str(latest))
    assert done.returncode == 0, done.stderr
    history = query("node0", "history")["entries"]
    assert sum(e["model_updated"] for e in history) >= 3
    assert measure_accuracy(latest) > measure_accuracy(None) + 0.2


def test_a_newcomer_joins_by_staking_then_proposes_and_signs(network: None) -> None:
    run_testnet("join")
    joiner = query("joiner", "status")["node_id"]
    wait_until(
        "the joiner in the validator set",
        lambda: any(v["address"] == joiner for v in query("node0", "validators")["validators"]),
    )
    stake = {v["address"]: v["stake"] for v in query("node0", "validators")["validators"]}[joiner]
    assert stake == 2000
    since = height("node0")

    def blocks_with(test: Callable[[dict[str, Any]], bool]) -> bool:
        return any(test(query("node0", "block", str(h))) for h in range(since, height("node0") + 1))

    wait_until(
        "a block proposed by the joiner", lambda: blocks_with(lambda b: b["proposer"] == joiner)
    )
    wait_until(
        "a commit signed by the joiner", lambda: blocks_with(lambda b: joiner in b["signers"])
    )
    top = height("node0")
    assert query("joiner", "block", str(top))["hash"] == query("node0", "block", str(top))["hash"]


def test_a_stopped_validator_is_not_missed_and_catches_up(network: None) -> None:
    compose("stop", "node3")
    stopped_at = max(height(n) for n in ("node0", "node1", "node2"))
    wait_until("blocks without node3", lambda: height("node0") >= stopped_at + 5)
    compose("start", "node3")
    wait_until("node3 caught up", lambda: height("node3") >= height("node0") - 1 > stopped_at + 5)
    top = height("node3")
    assert query("node3", "block", str(top))["hash"] == query("node0", "block", str(top))["hash"]
