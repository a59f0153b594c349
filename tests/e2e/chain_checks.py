"""What end-to-end tests check of a chain of real processes, once."""

from __future__ import annotations

import json

from learnchain.node.localnet.cluster import LocalCluster, check_learnchain


def read_agreed_updates(cluster: LocalCluster, nodes: range) -> list[int]:
    """The heights whose blocks updated the model (``query history`` on the first node), once
    every node in ``nodes`` holds the same block at each."""
    history = json.loads(
        check_learnchain("query", "history", "--home", str(cluster[0].home), "--output", "json")
    )["entries"]
    updated = [int(e["height"]) for e in history if e["model_updated"]]
    for height in updated:
        hashes = {cluster[i].block_hash(height) for i in nodes}
        assert len(hashes) == 1, f"the nodes hold different blocks at height {height}"
    return updated
