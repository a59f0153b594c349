"""A newcomer joins a running testnet by staking, validates, and leaves by unstaking."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from learnchain.node.localnet.cluster import LocalCluster, run_learnchain
from tests.e2e import EMPTY_BLOCKS

pytestmark = pytest.mark.e2e

JOINER = 4


def cli_json(*args: str) -> Any:
    """Run a CLI command with ``--output json`` and parse its one JSON object."""
    done = run_learnchain(*args, "--output", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


CLUSTER: LocalCluster | None = None  # the running cluster, for log tails in failure messages


def wait_until(what: str, check: Callable[[], Any], timeout: float = 180) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    logs = ""
    if CLUSTER is not None:
        for log in sorted(CLUSTER.root.glob("node*.log")):
            logs += f"\n--- {log.name}\n{log.read_text()[-1500:]}"
    raise AssertionError(f"timed out waiting for: {what}{logs}")


def validator_stakes(cluster: LocalCluster) -> dict[str, int]:
    shown = cli_json("query", "validators", "--node", cluster[0].address)
    return {v["address"]: v["stake"] for v in shown["validators"]}


def find_block(
    cluster: LocalCluster, first: int, test: Callable[[dict[str, Any]], bool]
) -> int | None:
    """The first committed height from ``first`` on whose block satisfies ``test``."""
    for height in range(first, cluster[0].height() + 1):
        if test(cli_json("query", "block", str(height), "--node", cluster[0].address)):
            return height
    return None


def test_a_full_node_joins_by_staking_then_proposes_votes_and_leaves(tmp_path: Path) -> None:
    global CLUSTER
    cluster = CLUSTER = LocalCluster(tmp_path / "net", 4, *EMPTY_BLOCKS, spare_ports=1)
    cluster.start_all()
    try:
        cluster.wait_for([0, 1, 2, 3], 3)
        cluster.init_joiner(JOINER, "--shard", "4/5")
        cluster[JOINER].configure("create_empty_blocks", "true")  # as the others (EMPTY_BLOCKS)
        cluster[JOINER].configure("timeouts.commit", "100")
        cluster[JOINER].start()
        joiner = cli_json("keys", "show", "--home", str(cluster[JOINER].home))["address"]

        # A full node: it follows the chain without being a validator.
        cluster.wait_for([JOINER], cluster[0].height() + 2)
        assert joiner not in validator_stakes(cluster)

        sent = cli_json(
            "tx",
            "transfer",
            joiner,
            "5000",
            "--from",
            str(cluster.root / "faucet_key.json"),
            "--node",
            cluster[0].address,
        )
        # The transaction is found by its hash, with the block that committed it.
        found = cli_json("query", "tx", sent["tx_hash"], "--node", cluster[0].address)
        assert (found["kind"], found["amount"], found["recipient"]) == ("transfer", 5000, joiner)
        assert found["block_hash"] == cluster[0].block_hash(found["height"]).hex()
        # The joiner admits a stake only once it has seen the funds (CheckTx on its own state).
        wait_until(
            "the joiner sees its funds",
            lambda: (
                cli_json("query", "account", joiner, "--node", cluster[JOINER].address)["balance"]
                >= 5000
            ),
        )
        # Submitted to the joiner itself, which passes it on to the validators.
        cli_json(
            "tx",
            "stake",
            "2000",
            "--from",
            "validator",
            "--home",
            str(cluster[JOINER].home),
            "--no-wait",
        )
        bond = wait_until(
            "the stake committed",
            lambda: (
                (a := cli_json("query", "account", joiner, "--node", cluster[1].address)).get(
                    "bonded"
                )
                and a
            ),
        )
        assert bond["bonded"] == 2000
        assert bond["endpoint"] == cluster[JOINER].address
        joined_at = cluster[1].height()

        wait_until("the joiner in the validator set", lambda: validator_stakes(cluster).get(joiner))
        assert validator_stakes(cluster)[joiner] == 2000

        proposed = wait_until(
            "a block proposed by the joiner",
            lambda: find_block(cluster, joined_at, lambda b: b["proposer"] == joiner),
        )
        signed = wait_until(
            "a commit signed by the joiner",
            lambda: find_block(cluster, joined_at, lambda b: joiner in b["signers"]),
        )
        assert proposed and signed
        top = min(cluster[i].height() for i in range(5))
        for height in range(joined_at, top + 1):
            assert len({cluster[i].block_hash(height) for i in range(5)}) == 1, height

        cli_json(
            "tx", "unstake", "2000", "--from", "validator", "--home", str(cluster[JOINER].home)
        )
        wait_until(
            "the joiner out of the validator set", lambda: joiner not in validator_stakes(cluster)
        )
        height = cluster[0].height()
        cluster.wait_for([0, 1, 2, 3, JOINER], height + 3)
    finally:
        cluster.close()
