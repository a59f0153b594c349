"""A chain written by the previous store format (tests/fixtures/store_format_1.tar.gz, made by
the build before weights left LevelDB) migrates when a node of this build starts on it, and the
chain goes on from the same height with the same history."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from learnchain.node.home.testnet import find_free_base_port
from learnchain.node.localnet.cluster import LocalNode, check_learnchain
from learnchain.node.store.store import STORE_FORMAT, Store
from tests.node.test_store import unpack_format_1_fixture

pytestmark = pytest.mark.e2e

FIXTURE_HEIGHT = 6


def test_a_node_on_a_chain_of_the_previous_format_migrates_it_and_keeps_committing(
    tmp_path: Path,
) -> None:
    home = unpack_format_1_fixture(tmp_path)
    address = f"127.0.0.1:{find_free_base_port(1, start=31500)}"
    for key, value in (("listen", address), ("create_empty_blocks", "true")):
        check_learnchain("config", "set", key, value, "--home", str(home))
    node = LocalNode(tmp_path, 0, address)
    try:
        node.start()
        check_learnchain(
            "query",
            "block",
            str(FIXTURE_HEIGHT + 3),
            "--wait",
            "--timeout",
            "120",
            "--home",
            str(home),
        )
        blocks = [node.block(h) for h in range(1, FIXTURE_HEIGHT + 4)]
        for before, after in itertools.pairwise(blocks):
            assert after.header.prev_hash == before.hash, f"history broken at {after.height}"
    finally:
        node.stop()
        node.close()
    with Store(home / "data" / "chain.db") as store:
        assert store.get_format() == STORE_FORMAT
        state = store.load_state()
        assert state is not None and state.height >= FIXTURE_HEIGHT + 3
