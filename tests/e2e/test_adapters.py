"""A chain that fine-tunes a pretrained network with LoRA adapters (examples/adapters, peft):
the nodes share, store and agree on the adapters alone, the genesis pins the frozen base, a
node with another base refuses to start, and bad bases are refused before anything is
written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from learnchain.node.localnet.cluster import LocalCluster, check_learnchain, run_learnchain
from tests.e2e.chain_checks import read_agreed_updates

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "adapters"
WIDTH, DEPTH = 512, 3
TASK = (
    *("--task", "lora_mlp:LoRAMLP", "--task-path", str(EXAMPLE)),
    *("--task-param", f"width={WIDTH}", "--task-param", f"depth={DEPTH}"),
    *("--task-param", "local_epochs=2"),
)


def write_base(path: Path, seed: int, width: int = WIDTH) -> Path:
    """A pretrained backbone file, as the example's script writes one."""
    script = EXAMPLE / "lora_mlp.py"
    subprocess.run(
        [sys.executable, str(script), str(path), str(width), str(DEPTH), str(seed)], check=True
    )
    return path


def test_a_chain_trains_adapters_on_a_pinned_frozen_base(tmp_path: Path) -> None:
    base = write_base(tmp_path / "base.safetensors", seed=1)
    with LocalCluster(
        tmp_path / "net", 2, *TASK, "--pretrained", str(base), "--training-heights", "3"
    ) as cluster:
        genesis = json.loads((cluster[0].home / "genesis.json").read_text())
        assert len(genesis["task"]["base_hash"]) == 64
        cluster.start_all()
        cluster.wait_for([0, 1], 4, timeout=240)
        updated = read_agreed_updates(cluster, range(2))
        assert updated, updated
        stored = list((cluster[0].home / "data" / "weights").glob("*.safetensors"))
        assert stored
        # the adapters and the head: far smaller than the 2.2 MB backbone
        assert all(path.stat().st_size < base.stat().st_size / 4 for path in stored)


def test_a_node_whose_base_differs_refuses_to_start(tmp_path: Path) -> None:
    base = write_base(tmp_path / "base.safetensors", seed=1)
    other = write_base(tmp_path / "other.safetensors", seed=2)
    net = tmp_path / "net"
    check_learnchain(
        "testnet", "--validators", "1", "--output-dir", str(net), *TASK, "--pretrained", str(base)
    )
    home = net / "node0"
    check_learnchain("config", "set", "pretrained", str(other), "--home", str(home))
    started = run_learnchain("start", "--home", str(home), timeout=120)
    assert started.returncode == 1
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1, started.stderr
    assert "is config.toml's `pretrained` the chain's weights file?" in lines[0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--pretrained", "WRONG"), r"0.weight is torch.float32 \(1024, 64\)"),
        (("--task", "tests.ml.test_frozen_base:AllFrozenTask"), "no tensor of the model trains"),
    ],
)
def test_a_base_that_does_not_fit_is_refused_at_testnet(
    tmp_path: Path, extra: tuple[str, ...], message: str
) -> None:
    wrong = write_base(tmp_path / "wrong.safetensors", seed=1, width=WIDTH * 2)
    args = tuple(str(wrong) if a == "WRONG" else a for a in extra)
    done = run_learnchain(
        "testnet", "--validators", "1", "--output-dir", str(tmp_path / "net"), *TASK, *args
    )
    assert done.returncode == 1, done.stdout
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert re.search(message, done.stderr), done.stderr
    assert not (tmp_path / "net").exists()
