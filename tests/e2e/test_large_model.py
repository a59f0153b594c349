"""A model larger than the old 64 MiB limit trains on a chain of real processes: every node
commits the same updates, stores each model once as a file, and exports the chain's model; and
a model over the chain's limit is refused before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from learnchain.node.localnet.cluster import LocalCluster, check_learnchain, run_learnchain
from tests.e2e.chain_checks import read_agreed_updates

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BENCH = Path(__file__).resolve().parents[2] / "bench"
WIDTH = 4144  # DeepMLP of two hidden layers: 70 MB of float32 weights (17.5M parameters)
TASK = (
    *("--task", "large_model_task:DeepMLP", "--task-path", str(BENCH)),
    *("--task-param", f"width={WIDTH}", "--task-param", "depth=2"),
    *("--task-param", "local_epochs=1", "--task-param", "batch_size=64"),
)
MIB_64 = 64 << 20


def test_a_model_over_64_mib_trains_and_every_node_agrees(tmp_path: Path) -> None:
    with LocalCluster(
        tmp_path / "net", 2, *TASK, "--training-heights", "3", "--plateau-rounds", "0"
    ) as cluster:
        cluster.start_all()
        cluster.wait_for([0, 1], 4, timeout=300)
        updated = read_agreed_updates(cluster, range(2))
        assert len(updated) >= 2, updated
        out = tmp_path / "model.safetensors"
        check_learnchain(
            "model", "export", "--home", str(cluster[0].home), "--output-file", str(out)
        )
        assert out.stat().st_size > MIB_64
        for i in range(2):
            stored = list((cluster[i].home / "data" / "weights").glob("*.safetensors"))
            assert stored and all(path.stat().st_size > MIB_64 for path in stored)
            assert len(stored) <= 10 + 2 + 3, "retained models, the learner's, one round"


def test_a_chain_whose_model_exceeds_its_limit_is_refused_at_testnet(tmp_path: Path) -> None:
    done = run_learnchain(
        "testnet",
        *("--validators", "2", "--output-dir", str(tmp_path / "net")),
        *TASK,
        *("--task-param", f"max_weights_bytes={MIB_64}"),
    )
    assert done.returncode == 1
    assert "more than task.max_weights_bytes (67108864)" in done.stderr
    assert not (tmp_path / "net").exists()
