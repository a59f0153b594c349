"""A chain whose contributions travel as top-k updates (``task.codec``) trains: every node,
whether its learner runs in the validator or in a process of its own, re-computes the same
aggregates from the decoded updates; a contribution weighs its encoding on disk and on the wire,
not the model; and a node that missed several updates catches up to the chain's exact model."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
import safetensors.torch

from learnchain.ml.codec import compute_weights_hash
from learnchain.node.localnet.cluster import LocalCluster
from tests.e2e.chain_checks import read_agreed_updates

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


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
        tmp_path / "net", 4, "--task-param", "codec=topk:0.05", "--training-heights", "6"
    ) as cluster:
        genesis = json.loads((cluster[0].home / "genesis.json").read_text())
        assert genesis["task"]["codec"] == "topk:0.05"
        cluster[2].configure("trainer", "process")  # decodes in its learner process
        cluster.start_all()
        cluster.wait_for([0, 1, 2, 3], 2, timeout=300)
        cluster[3].stop()  # it misses the next model updates
        cluster.wait_for([0, 1, 2], 6, timeout=300)
        updated = read_agreed_updates(cluster, range(3))
        assert len([h for h in updated if h > 2]) >= 2, updated
        block = cluster[0].block(updated[-1])
        assert len(block.contributions) >= 2  # an aggregate every validator re-computed
        weights = cluster[0].home / "data" / "weights"
        model = weights / f"{block.header.model_hash.hex()}.safetensors"
        for contribution in block.contributions:
            stored = weights / f"{contribution.weights_hash.hex()}.safetensors"
            if stored.exists():  # not yet pruned: a twentieth of the model, in 5 bytes a value
                assert stored.stat().st_size * 10 < model.stat().st_size
        # two small updates a round, the model computed from them rather than received: less
        # than one model a round, where a float32 chain moves three (two contributions and it)
        received = read_received_bytes(cluster[1].metrics_url)
        assert received < model.stat().st_size * len(updated), (received, len(updated))

        cluster[3].start()  # catches up across the updates it missed, models fetched whole
        top = cluster[0].height()
        cluster.wait_for([3], top, timeout=180)
        at_top = cluster[0].block(top).header.model_hash
        status = cluster[3].status()
        assert status is not None and status.model_hash == at_top
        held = safetensors.torch.load(cluster[3].fetch_model(at_top))
        assert compute_weights_hash(held) == at_top  # the chain's exact model
        assert all(cluster[i].is_running() for i in range(4))
