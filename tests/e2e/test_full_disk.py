"""A validator whose disk fills up stops at once with a one-line error and a non-zero exit
(rather than living on without consensus), and once space is freed it restarts from the last
block it committed and goes on."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from learnchain.node.localnet.cluster import LocalCluster
from learnchain.node.store.store import Store
from tests.disk import fill_disk
from tests.e2e import EMPTY_BLOCKS

pytestmark = pytest.mark.e2e


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MB tmpfs (needs root; skipped where it cannot be mounted)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_validator_that_cannot_write_stops_and_restarts_where_it_was(
    small_disk: Path, tmp_path: Path
) -> None:
    # The log goes elsewhere, as to journald: on the full disk its last line would be cut short.
    with LocalCluster(
        small_disk / "net", 1, "--training-heights", "3", *EMPTY_BLOCKS, log_dir=tmp_path
    ) as net:
        node = net[0]
        node.start()
        net.wait_for([0], 5, timeout=180)
        filler = fill_disk(small_disk)
        assert node.process is not None
        code = node.process.wait(timeout=120)
        assert code != 0
        last_line = node.log_tail().strip().splitlines()[-1]
        assert last_line.startswith("Error: ") and "consensus stopped" in last_line, last_line
        filler.unlink()
        with Store(node.home / "data" / "chain.db") as store:
            state = store.load_state()
            assert state is not None and state.height >= 5
            committed = store.get_block(state.height)
        assert committed is not None
        node.start()
        net.wait_for([0], state.height + 3, timeout=180)
        assert node.block_hash(state.height) == committed.hash
