"""An upgrade agreed on chain, with real processes: four validators signal a plan, every node
stops before its height saying which upgrade it needs, a node restarted on the old build stops
again with that line, and on the new build (one that carries the plan's handler as a
``learnchain.upgrades`` entry point, as an installed newer package would) the chain goes on from
the same height: the handler's change is in the state, and every earlier block is still served.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from learnchain.node.localnet.cluster import LocalCluster, check_learnchain
from tests.e2e import EMPTY_BLOCKS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

UPGRADE = "community-pool"
POOL = "ab" * 20
MINTED = 1234
HANDLER = f'''
"""The handler a newer build carries for the upgrade {UPGRADE!r}."""
from dataclasses import replace

from learnchain.consensus.state import Account

POOL = bytes.fromhex("{POOL}")


def mint_community_pool(state):
    accounts = dict(state.accounts)
    held = accounts.get(POOL, Account())
    accounts[POOL] = replace(held, balance=held.balance + {MINTED})
    return replace(state, accounts=accounts)
'''


def write_new_build(folder: Path) -> Path:
    """A folder that, on PYTHONPATH, makes this learnchain carry the upgrade: a module and the
    package metadata that declares its entry point."""
    folder.mkdir()
    (folder / "community_pool_upgrade.py").write_text(HANDLER)
    info = folder / "community_pool_upgrade-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: community-pool-upgrade\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        f"[learnchain.upgrades]\n{UPGRADE} = community_pool_upgrade:mint_community_pool\n"
    )
    return folder


def learnchain(*args: str, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI of the old build, or of the new one with ``path`` on PYTHONPATH."""
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(path), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "learnchain", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def wait_until_exited(cluster: LocalCluster, nodes: range, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(not cluster[i].is_running() for i in nodes):
            return
        time.sleep(0.5)
    raise AssertionError("the nodes did not stop at the upgrade height")


def test_validators_pass_an_upgrade_stop_at_its_height_and_go_on_with_the_new_build(
    tmp_path: Path,
) -> None:
    new_build = write_new_build(tmp_path / "new_build")
    with LocalCluster(tmp_path / "net", 4, *EMPTY_BLOCKS) as cluster:
        cluster.configure_all("train", "false")
        cluster.start_all()
        cluster.wait_for(range(4), 3)
        home0 = str(cluster[0].home)

        old = learnchain(
            "tx", "upgrade", UPGRADE, "--height", "500", "--from", "validator", "--home", home0
        )
        assert old.returncode == 2 and f"unknown upgrade '{UPGRADE}'" in old.stderr, old.stderr
        past = learnchain(
            "tx",
            "upgrade",
            UPGRADE,
            "--height",
            "1",
            "--from",
            "validator",
            "--home",
            home0,
            path=new_build,
        )
        assert past.returncode == 2 and "is not after the next block" in past.stderr, past.stderr

        plan_height = cluster[0].height() + 30
        for i in range(4):
            sent = learnchain(
                "tx",
                "upgrade",
                UPGRADE,
                "--height",
                str(plan_height),
                "--from",
                "validator",
                "--home",
                str(cluster[i].home),
                "--no-wait",
                path=new_build,
            )
            assert sent.returncode == 0, sent.stderr
        wait_until_exited(cluster, range(4))
        for i in range(4):
            process = cluster[i].process
            assert process is not None and process.returncode != 0
            cluster[i].stop()
            assert f"upgrade '{UPGRADE}' is needed at height {plan_height}" in cluster[i].log_tail()

        cluster[0].start()  # the old build again: it stops with the same line
        wait_until_exited(cluster, range(1), timeout=120)
        assert f"upgrade '{UPGRADE}' is needed at height {plan_height}" in cluster[0].log_tail(600)
        cluster[0].stop()

        for i in range(4):
            cluster[i].environment["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(new_build), os.environ.get("PYTHONPATH")])
            )
            cluster[i].start()
        cluster.wait_for(range(4), plan_height + 3)
        for height in (1, plan_height - 1, plan_height, plan_height + 3):
            hashes = {cluster[i].block_hash(height) for i in range(4)}
            assert len(hashes) == 1, f"the nodes serve different blocks at {height}"
        account = json.loads(
            check_learnchain("query", "account", POOL, "--home", home0, "--output", "json")
        )
        assert account["balance"] == MINTED
        upgrade = json.loads(
            check_learnchain("query", "upgrade", "--home", home0, "--output", "json")
        )
        assert upgrade["plan"] is None and UPGRADE in upgrade["node_carries"]
