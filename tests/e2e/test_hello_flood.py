"""A flood of Hellos from made-up nodes with dead endpoints adds nobody to a validator's peers,
and a genuine newcomer that says Hello afterwards is still dialled."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from learnchain.consensus.crypto import PrivateKey
from learnchain.consensus.types import ChainId
from learnchain.node.home.testnet import find_free_base_port
from learnchain.node.localnet.cluster import LocalCluster, send_hellos
from learnchain.node.p2p.peer_auth import make_hello
from learnchain.proto import learnchain_pb2 as pb
from tests.e2e import EMPTY_BLOCKS

pytestmark = pytest.mark.e2e

JOINER = 2
FLOOD = 300  # more than the peer table's 64 announced places


def make_flood(chain_id: ChainId, dead_base: int) -> Iterator[pb.HelloRequest]:
    """Signed Hellos from fresh keys naming dead endpoints, each followed by an unsigned one."""
    for i in range(FLOOD):
        endpoint = f"127.0.0.1:{dead_base + i}"
        yield make_hello(PrivateKey.generate(), chain_id, endpoint)
        yield pb.HelloRequest(chain_id=chain_id, node_id=bytes(20), endpoint=endpoint)


def test_a_hello_flood_adds_nobody_and_a_real_newcomer_is_still_dialled(tmp_path: Path) -> None:
    with LocalCluster(tmp_path / "net", 2, *EMPTY_BLOCKS, spare_ports=1) as cluster:
        cluster.start_all()
        cluster.wait_for([0, 1], 2)
        status = cluster[0].status()
        assert status is not None
        dead_base = find_free_base_port(FLOOD, start=45000, step=FLOOD + 7)

        codes = send_hellos(cluster[0].address, make_flood(ChainId(status.chain_id), dead_base))

        assert codes.get("INVALID_ARGUMENT", 0) >= FLOOD  # every unsigned one, some signed ones
        cluster.init_joiner(JOINER)
        cluster[JOINER].start()
        joiner_added = f"new announced peer {cluster[JOINER].address}"
        deadline = time.monotonic() + 90
        while joiner_added not in cluster[0].log_path.read_text():
            assert time.monotonic() < deadline, cluster[0].log_tail()
            cluster.check_alive()
            time.sleep(0.5)
        log = cluster[0].log_path.read_text()
        assert log.count("new announced peer") == 1, log[-3000:]
        cluster.wait_for([JOINER], cluster[0].height() + 2)
