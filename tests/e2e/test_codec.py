"""A chain whose contributions travel as top-k updates (``task.codec``) trains: every node,
whether its learner runs in its own process or in a process of its own, re-computes the same
aggregates from the decoded updates, and what a contribution weighs on disk and on the wire is
its encoding, not the model."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from learnchain.node.cluster import LocalCluster
from tests.e2e.chain_checks import read_agreed_updates

pytestmark = pytest.mark.e2e


def read_received_bytes(url: str) -> float:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    name = "learnchain_learning_weights_bytes_total"
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and 'direction="received"' in line
    )


def test_a_chain_whose_contributions_are_top_k_updates_trains_and_agrees(tmp_path: Path) -> None:
    with LocalCluster(
        tmp_path / "net", 3, "--task-param", "codec=topk:0.05", "--training-heights", "3"
    ) as cluster:
        genesis = json.loads((cluster[0].home / "genesis.json").read_text())
        assert genesis["task"]["codec"] == "topk:0.05"
        cluster[2].configure("trainer", "process")  # decodes in its learner process
        cluster.start_all()
        cluster.wait_for([0, 1, 2], 5, timeout=300)
        updated = read_agreed_updates(cluster, range(3))
        assert len(updated) >= 2, updated
        block = cluster[0].block(updated[-1])
        assert len(block.contributions) >= 2  # an aggregate every validator re-computed
        weights = cluster[0].home / "data" / "weights"
        model = weights / f"{block.header.model_hash.hex()}.safetensors"
        for contribution in block.contributions:
            stored = weights / f"{contribution.weights_hash.hex()}.safetensors"
            if stored.exists():  # not yet pruned: a twentieth of the model, in 5 bytes a value
                assert stored.stat().st_size * 10 < model.stat().st_size
        assert all(cluster[i].is_running() for i in range(3))
        # two small updates a round, the model computed from them rather than received: less
        # than one model a round, where a float32 chain moves three (two contributions and it)
        received = read_received_bytes(cluster[1].metrics_url)
        assert received < model.stat().st_size * len(updated), (received, len(updated))
