"""Five real validators relaying votes through each round's proposer (genesis
``vote_relay_from``): they agree, the proposers relay, and a killed one costs no liveness."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator

import pytest

from node.testnet import find_free_base_port
from tests.e2e.cluster import Cluster

pytestmark = pytest.mark.e2e

VALIDATORS = 5


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    net = Cluster(
        tmp_path_factory.mktemp("relay") / "net", VALIDATORS, "--vote-relay-from", str(VALIDATORS)
    )
    metrics = find_free_base_port(VALIDATORS, start=net.base_port + 400, step=29)
    for i in range(VALIDATORS):
        config = net.home(i) / "config.toml"
        text = config.read_text().replace("train = true", "train = false")
        config.write_text(
            re.sub(r'(?m)^metrics = ".*"$', f'metrics = "127.0.0.1:{metrics + i}"', text)
        )
    net.metrics_base = metrics  # type: ignore[attr-defined]
    net.start_all()
    try:
        net.wait_for(list(range(VALIDATORS)), 10)
        yield net
    finally:
        net.stop_all()


def relayed_votes(cluster: Cluster, i: int) -> float:
    """learnchain_relayed_votes_total of node ``i``."""
    url = f"http://127.0.0.1:{cluster.metrics_base + i}/metrics"  # type: ignore[attr-defined]
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    match = re.search(r"^learnchain_relayed_votes_total ([0-9.e+]+)$", text, re.M)
    assert match, "the relay counter is exported"
    return float(match.group(1))


def test_relaying_validators_agree_on_every_block(cluster: Cluster) -> None:
    top = min(cluster.height(i) for i in range(VALIDATORS))
    for height in range(1, top + 1):
        hashes = {cluster.block_hash(i, height) for i in range(VALIDATORS)}
        assert len(hashes) == 1, height


def test_every_proposer_relays_the_votes_sent_to_it(cluster: Cluster) -> None:
    assert all(relayed_votes(cluster, i) > 0 for i in range(VALIDATORS))


def test_a_killed_validator_costs_its_turns_not_the_chain(cluster: Cluster) -> None:
    cluster.kill(4)
    before = max(cluster.height(i) for i in range(4))
    cluster.wait_for([0, 1, 2, 3], before + 2 * VALIDATORS)  # its proposer turns included
    cluster.start(4)
    cluster.wait_for(list(range(VALIDATORS)), max(cluster.height(i) for i in range(4)) + 3)
    top = min(cluster.height(i) for i in range(VALIDATORS))
    assert cluster.block_hash(4, top) == cluster.block_hash(0, top)
