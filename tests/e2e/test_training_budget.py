"""A genesis training budget: the model changes up to that height, then blocks carry only txs."""

from __future__ import annotations

from pathlib import Path

import pytest

from learnchain.node.localnet.cluster import LocalCluster
from tests.e2e import EMPTY_BLOCKS

pytestmark = pytest.mark.e2e

TRAINING_HEIGHTS = 6


def test_the_model_stops_changing_after_the_training_budget_and_the_chain_goes_on(
    tmp_path: Path,
) -> None:
    with LocalCluster(
        tmp_path / "net", 3, "--training-heights", str(TRAINING_HEIGHTS), *EMPTY_BLOCKS
    ) as net:
        net.start_all()
        net.wait_for([0, 1, 2], TRAINING_HEIGHTS + 6)
        models = [net[0].block(h).header.model_hash for h in range(1, TRAINING_HEIGHTS + 7)]
    during, after = models[:TRAINING_HEIGHTS], models[TRAINING_HEIGHTS:]
    assert len(set(during)) > 1, "the model should change while training lasts"
    assert set(after) == {during[-1]}, "no block after the budget may change the model"
