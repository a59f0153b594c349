"""Three organisations, each on a host of its own (a network namespace with its own address),
launch a chain by a genesis ceremony that exchanges only public files: each signs a gentx on its
host with its own key, its own data file and its own TLS authority; a coordinator collects the
gentx files into genesis.json; each validates it and starts its validator. Every validator signs
and the model improves on every organisation's own data.

Needs root (``make chaos`` runs it); skipped elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from learnchain.consensus.crypto import compute_address
from learnchain.consensus.types import Address
from learnchain.node.home.files import read_genesis
from learnchain.node.localnet.cluster import LocalNode, check_learnchain
from tests.chaos.network import ChaosNetwork, find_missing

pytestmark = pytest.mark.chaos

ORGANISATIONS = 3
PORT = 26656
TRAINING_SECONDS = 240


def write_organisation_data(folder: Path, party: int) -> Path:
    """An organisation's private CSV: its own share of the breast cancer set (columns named,
    one organisation's in another order), raw units."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    names = [name.replace(" ", "_") for name in bunch.feature_names]
    rows = np.random.default_rng(7).permutation(len(bunch.target))
    mine = np.array_split(rows, ORGANISATIONS)[party]
    order = list(range(len(names)))[::-1] if party == 1 else list(range(len(names)))
    lines = [",".join([names[j] for j in order] + ["label"])]
    for r in mine:
        lines.append(",".join(f"{bunch.data[r, j]:.6g}" for j in order) + f",{bunch.target[r]}")
    path = folder / "private.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def on_host(net: ChaosNetwork, i: int, *args: str) -> str:
    """``learnchain ARGS`` run on organisation ``i``'s host."""
    done = subprocess.run(
        [*net.launcher(i), sys.executable, "-m", "learnchain", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"host {i}: learnchain {' '.join(args)}\n{done.stderr}"
    return done.stdout


@contextlib.contextmanager
def hosts(tmp_path: Path) -> Iterator[ChaosNetwork]:
    missing = find_missing()
    if missing is not None:
        pytest.skip(missing)
    with ChaosNetwork(ORGANISATIONS) as net:
        yield net


def test_three_organisations_on_their_own_hosts_launch_a_chain_and_train(tmp_path: Path) -> None:
    public = tmp_path / "public"  # what the organisations exchange: gentx files and the genesis
    coordinator = tmp_path / "coordinator"
    public.mkdir()
    coordinator.mkdir()
    with hosts(tmp_path) as net:
        machines = [tmp_path / f"host{i}" for i in range(ORGANISATIONS)]
        for i, machine in enumerate(machines):
            machine.mkdir()
            data = write_organisation_data(machine, i)
            on_host(
                net,
                i,
                *("genesis", "gentx", "--home", str(machine / "node0"), "--chain-id", "consortium"),
                *("--moniker", f"org{i}", "--endpoint", f"{net.address(i)}:{PORT}"),
                *("--data-file", str(data), "--tls", "-o", str(machine / "gentx.json")),
            )
            shutil.copy(machine / "gentx.json", public / f"gentx-org{i}.json")
        for gentx in public.iterdir():
            shutil.copy(gentx, coordinator / gentx.name)
        check_learnchain(
            *("genesis", "collect", *sorted(str(p) for p in coordinator.glob("gentx-*.json"))),
            *("--chain-id", "consortium", "-o", str(coordinator / "genesis.json")),
            *("--plateau-rounds", "0"),
        )
        shutil.copy(coordinator / "genesis.json", public / "genesis.json")
        digests = set()
        for i, machine in enumerate(machines):
            shutil.copy(public / "genesis.json", machine / "genesis.json")
            said = on_host(
                net,
                i,
                "genesis",
                "validate",
                str(machine / "genesis.json"),
                "--home",
                str(machine / "node0"),
            )
            digests.add(next(line for line in said.splitlines() if "sha256" in line).split()[1])
        assert len(digests) == 1, "every organisation holds the same genesis"
        for machine in machines:
            assert not list(machine.glob("*.pem")), "no TLS file was exchanged"
            assert "PRIVATE KEY" not in (public / "genesis.json").read_text()

        nodes = [
            LocalNode(machine, 0, f"{net.address(i)}:{PORT}", launcher=net.launcher(i))
            for i, machine in enumerate(machines)
        ]
        try:
            for node in nodes:
                node.start()
            genesis = read_genesis(machines[0] / "node0")
            validators = {compute_address(v.public_key) for v in genesis.genesis.validators}
            signed_by_all, scores = wait_for_training(nodes, validators)
            assert signed_by_all, "no block carries every validator's signature"
            assert len(scores) >= 2 and scores[-1] > scores[0], (
                f"the model did not improve: {scores}"
            )
            for node in nodes:
                status = node.status()
                assert status is not None and status.height > 0, node.log_tail()
        finally:
            for node in nodes:
                node.stop()
                node.close()


def wait_for_training(nodes: list[LocalNode], validators: set[Address]) -> tuple[bool, list[float]]:
    """Wait until a block is signed by every validator and the recorded score has risen at
    least twice; what was seen."""
    deadline = time.monotonic() + TRAINING_SECONDS
    signed_by_all = False
    scores: list[float] = []
    while time.monotonic() < deadline:
        time.sleep(2)
        height = nodes[0].height()
        if height < 2:
            continue
        commit = nodes[0].block(height).last_commit
        if commit is not None and {s.validator for s in commit.signatures} == validators:
            signed_by_all = True
        history = json.loads(
            check_learnchain(
                "query",
                "history",
                "--home",
                str(nodes[0].home),
                "--node",
                nodes[0].address,
                "--output",
                "json",
            )
        )["entries"]
        scores = [
            float(e["score"])
            for e in history
            if e.get("model_updated") and e.get("score") is not None
        ]
        if signed_by_all and len(scores) >= 3 and scores[-1] > scores[0]:
            break
    return signed_by_all, scores
