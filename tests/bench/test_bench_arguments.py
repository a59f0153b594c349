"""The benches that build bench/quality.py's trials from another command line keep working as
quality.py gains options: bench/peers/flower.py's learnchain side runs its trials (it once built
their arguments by hand and broke on a new flag), and quality.py's codec option reaches the
task."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch

from learnchain.ml.aggregate import compute_update_norms
from learnchain.ml.weights_file import StateSource, WeightsLayout

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_bench(path: Path) -> ModuleType:
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # a dataclass's string annotations are resolved through it
    spec.loader.exec_module(module)
    return module


def test_the_flower_side_by_side_runs_learnchains_trials() -> None:
    flower = load_bench(BENCH / "peers" / "flower.py")
    args = argparse.Namespace(
        scenarios="none,ipm:1",
        seeds="0",
        rounds=2,
        parties=4,
        partition="dirichlet:0.5",
        data_file="",
        label_column="label",
        learnchain=["--reputation", "0.95"],
    )
    threads = torch.get_num_threads()
    try:
        rows = flower.run_learnchain(args)
    finally:
        torch.set_num_threads(threads)  # the tests after this one run as they would alone
    assert [r["scenario"] for r in rows] == ["none", "ipm:1"]
    assert all(0.0 < r["final_accuracy"] <= 1.0 for r in rows)


def test_quality_takes_the_codec_into_the_task() -> None:
    quality = load_bench(BENCH / "quality.py")
    args, attacks = quality.parse_trial_args(["--codec", "topk:0.05", "--byzantine", "ipm:1"])
    assert args.task_config.codec == "topk:0.05" and attacks == ["ipm"]


def test_an_attackers_update_scales_to_the_norm_it_is_given() -> None:
    quality = load_bench(BENCH / "quality.py")
    base = {"w": torch.zeros(2, 2), "b": torch.ones(3)}
    trained = {"w": torch.tensor([[3.0, 0.0], [0.0, 0.0]]), "b": torch.tensor([1.0, 1.0, 5.0])}
    layout = WeightsLayout.of_state(base)

    def norm(state: dict[str, torch.Tensor]) -> float:
        return float(compute_update_norms(StateSource(base), [StateSource(state)], layout)[0])

    assert norm(trained) == 5.0
    scaled = quality.compute_scaled_update(base, trained, 2.0 / 5.0)
    assert abs(norm(scaled) - 2.0) < 1e-6
    assert torch.equal(scaled["b"][:2], base["b"][:2])  # only what moved moves


def test_the_codec_attack_bench_pairs_each_seeds_runs() -> None:
    bench = load_bench(BENCH / "codec_attacks.py")
    assert bench.parse_seeds("0-3") == [0, 1, 2, 3] and bench.parse_seeds("2,5") == [2, 5]
    summary = bench.compute_summary([-0.01, -0.01, -0.04, 0.02])
    assert summary == {"mean": -0.01, "standard_error": 0.0122, "median": -0.01}
