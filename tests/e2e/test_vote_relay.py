"""Five real validators relaying votes through each round's proposer (genesis
``vote_relay_from``): they agree, the proposers relay, and a killed one costs no liveness."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator

import pytest

from learnchain.node.localnet.cluster import LocalCluster
from tests.e2e import EMPTY_BLOCKS

pytestmark = pytest.mark.e2e

VALIDATORS = 5


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    root = tmp_path_factory.mktemp("relay") / "net"
    with LocalCluster(root, VALIDATORS, "--vote-relay-from", str(VALIDATORS), *EMPTY_BLOCKS) as net:
        net.configure_all("train", "false")
        net.start_all()
        net.wait_for(range(VALIDATORS), 10)
        yield net


def relayed_votes(cluster: LocalCluster, i: int) -> float:
    """learnchain_consensus_relayed_votes_total of node ``i``."""
    with urllib.request.urlopen(cluster[i].metrics_url, timeout=5) as response:
        text = response.read().decode()
    match = re.search(
        r"^learnchain_consensus_relayed_votes_total\{[^}]*\} ([0-9.e+]+)$", text, re.M
    )
    assert match, "the relay counter is exported"
    return float(match.group(1))


def test_relaying_validators_agree_on_every_block(cluster: LocalCluster) -> None:
    top = min(cluster[i].height() for i in range(VALIDATORS))
    for height in range(1, top + 1):
        hashes = {cluster[i].block_hash(height) for i in range(VALIDATORS)}
        assert len(hashes) == 1, height


def test_every_proposer_relays_the_votes_sent_to_it(cluster: LocalCluster) -> None:
    assert all(relayed_votes(cluster, i) > 0 for i in range(VALIDATORS))


def test_a_killed_validator_costs_its_turns_not_the_chain(cluster: LocalCluster) -> None:
    cluster[4].kill()
    before = max(cluster[i].height() for i in range(4))
    cluster.wait_for([0, 1, 2, 3], before + 2 * VALIDATORS)  # its proposer turns included
    cluster[4].start()
    cluster.wait_for(list(range(VALIDATORS)), max(cluster[i].height() for i in range(4)) + 3)
    top = min(cluster[i].height() for i in range(VALIDATORS))
    assert cluster[4].block_hash(top) == cluster[0].block_hash(top)
