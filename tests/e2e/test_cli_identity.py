"""The CLI never takes another chain's answer for its home's: a command that finds its node
through --home checks that the node answering is on the home's chain, and is the home's own node
when the address is the home's, and says so in one line when not."""

from __future__ import annotations

from pathlib import Path

import pytest

from learnchain.node.localnet.cluster import LocalCluster, run_learnchain

pytestmark = pytest.mark.e2e


def one_error_line(*args: str) -> str:
    done = run_learnchain(*args)
    assert done.returncode != 0, done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error"), done.stderr
    return lines[0]


def test_a_home_is_never_answered_by_another_chains_node_on_its_port(tmp_path: Path) -> None:
    with LocalCluster(tmp_path / "net", 1) as cluster:
        cluster.start_all()
        cluster.wait_for([0], 1, timeout=60)
        address = cluster[0].address
        other = tmp_path / "mynode"  # a one-validator chain of its own, not running
        made = run_learnchain("init", "--home", str(other), "--moniker", "m", "--listen", address)
        assert made.returncode == 0, made.stderr
        line = one_error_line("query", "status", "--home", str(other))
        assert "is on chain 'learnchain-testnet', not 'learnchain-local'" in line
        assert str(other) in line

        same_chain = tmp_path / "copy"  # the same chain, another key, the same port
        made = run_learnchain(
            "init",
            *("--home", str(same_chain), "--moniker", "c", "--listen", address),
            *("--genesis", str(cluster[0].home / "genesis.json")),
        )
        assert made.returncode == 0, made.stderr
        line = one_error_line("query", "status", "--home", str(same_chain))
        assert "not " in line and "own node" in line
        # naming the node outright is fine: it is on the home's chain
        asked = run_learnchain("query", "status", "--home", str(same_chain), "--node", address)
        assert asked.returncode == 0, asked.stderr
        assert run_learnchain("query", "status", "--home", str(cluster[0].home)).returncode == 0


def test_a_home_whose_node_is_not_running_says_so(tmp_path: Path) -> None:
    home = tmp_path / "h"
    made = run_learnchain("init", "--home", str(home), "--moniker", "m", "--listen", "127.0.0.1:9")
    assert made.returncode == 0, made.stderr
    line = one_error_line("query", "status", "--home", str(home))
    assert "cannot reach a node at 127.0.0.1:9" in line and "learnchain start --home" in line
