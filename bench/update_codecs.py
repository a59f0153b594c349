"""Codecs against float32 (issue #32): bytes each validator receives per committed round and final
accuracy, clean and under attack, on digits and on a data file.

Every configuration is one ``bench/quality.py`` run (five parties, 30 rounds, non-IID
Dirichlet 0.5 on digits, IID on scikit-learn's breast cancer set written out as a CSV, aggregate
mode, the default rule), with ``--codec`` the only change; each party's
contribution is its encoded update with error feedback, decoded by every validator as a node does
(``ml/update_codec.py``). Bytes per validator per round are the other parties' encoded
contributions, plus the proposed model when it travels (float32; with a codec a validator
computes it from the updates, docs/protocol.md §3.8).

The same ratio for bench/large_model_task.py's 100 MB DeepMLP is computed from the layouts (a
small model's safetensors header weighs as much as its top-k values). Targets: ``int8`` at
least 3.9 x fewer bytes with final accuracy within 0.003 of float32;
``topk:0.01`` at least 50 x fewer within 0.01; under each attack no worse than float32 by more
than 0.005.

    .venv/bin/python bench/update_codecs.py [--seeds 0-4,5-9]
        [--codecs float32,bfloat16,int8,topk:0.01] [--attacks label_flip:1,backdoor:1,ipm:1]
        [--jobs 2]

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

BENCH = Path(__file__).resolve().parent


def write_breast_cancer(path: Path) -> Path:
    """scikit-learn's bundled breast cancer set as a CSV with a ``label`` column."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*(f"f{i}" for i in range(data.data.shape[1])), "label"])
        for row, label in zip(data.data, data.target, strict=True):
            writer.writerow([*row.tolist(), int(label)])
    return path


def compute_large_model_ratio(codec: str, size_mb: float = 100.0, parties: int = 5) -> float:
    """How many times fewer bytes a validator receives per round than with float32, for
    bench/large_model_task.py's DeepMLP of ``size_mb`` (from the layouts alone)."""
    from large_model_task import compute_width

    from learnchain.ml.update_codec import parse_codec
    from learnchain.ml.weights_file import TensorSpec, WeightsLayout

    width, depth, features, classes = compute_width(size_mb, 4), 4, 64, 10
    shapes = {"input.weight": (width, features), "input.bias": (width,)}
    for i in range(depth - 1):
        shapes |= {f"hidden{i}.weight": (width, width), f"hidden{i}.bias": (width,)}
    shapes |= {"output.weight": (classes, width), "output.bias": (classes,)}
    layout = WeightsLayout({n: TensorSpec(torch.float32, s) for n, s in shapes.items()})
    decoded = parse_codec(codec)
    contribution = decoded.compute_encoded_layout(layout).file_size
    model = layout.file_size if decoded.sends_weights else 0
    return parties * layout.file_size / ((parties - 1) * contribution + model)


def run_quality(options: list[str]) -> dict[str, Any]:
    """One bench/quality.py run's JSON line."""
    command = [sys.executable, str(BENCH / "quality.py"), "--output", "json", *options]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="0-4,5-9", help="seed ranges, each a row")
    parser.add_argument("--codecs", default="float32,bfloat16,int8,topk:0.01")
    parser.add_argument("--attacks", default="label_flip:1,backdoor:1,ipm:1")
    parser.add_argument("--attack-seeds", default="0-4")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2, help="quality runs at a time")
    args = parser.parse_args()
    codecs = args.codecs.split(",")
    common = ["--parties", "5", "--partition", "dirichlet:0.5", "--rounds", str(args.rounds)]
    with tempfile.TemporaryDirectory() as scratch:
        data_file = write_breast_cancer(Path(scratch) / "breast_cancer.csv")
        cases: list[tuple[str, str, str, list[str]]] = []  # (data, seeds, attack, options)
        for seeds in args.seeds.split(","):
            cases.append(("digits", seeds, "none", ["--seeds", seeds]))
        cases.append(
            (
                "breast cancer",
                "0-4",
                "none",
                ["--seeds", "0-4", "--data-file", str(data_file), "--partition", "iid"],
            )
        )
        for attack in filter(None, args.attacks.split(",")):
            cases.append(
                (
                    "digits",
                    args.attack_seeds,
                    attack,
                    ["--seeds", args.attack_seeds, "--byzantine", attack],
                )
            )
        jobs = [(case, codec) for case in cases for codec in codecs]
        with ThreadPoolExecutor(args.jobs) as pool:
            results = list(
                pool.map(lambda job: run_quality([*common, *job[0][3], "--codec", job[1]]), jobs)
            )
    rows = []
    for (case, codec), result in zip(jobs, results, strict=True):
        rows.append(
            {
                "data": case[0],
                "seeds": case[1],
                "attack": case[2],
                "codec": codec,
                "final_accuracy": result["final_accuracy_mean"],
                "attack_success_rate": result["attack_success_rate_mean"],
                "received_bytes_per_validator_round": result["received_bytes_per_validator_round"],
                "contribution_bytes": result["contribution_bytes"],
                "bytes_fewer_at_100mb": round(compute_large_model_ratio(codec), 1),
                "accepted": result["accepted"],
                "byzantine_accepted": result["byzantine_accepted"],
            }
        )
    baseline = {(r["data"], r["seeds"], r["attack"]): r for r in rows if r["codec"] == "float32"}
    print(
        f"{'data':<14} {'seeds':<5} {'attack':<12} {'codec':<10} {'final':>6} {'Δ f32':>7} "
        f"{'bytes/round':>11} {'fewer':>7} {'at 100MB':>8} {'accepted':>8}"
    )
    for row in rows:
        base = baseline.get((row["data"], row["seeds"], row["attack"]))
        row["accuracy_vs_float32"] = (
            round(row["final_accuracy"] - base["final_accuracy"], 4) if base else None
        )
        row["bytes_fewer_than_float32"] = (
            round(
                base["received_bytes_per_validator_round"]
                / row["received_bytes_per_validator_round"],
                2,
            )
            if base
            else None
        )
        print(
            f"{row['data']:<14} {row['seeds']:<5} {row['attack']:<12} {row['codec']:<10} "
            f"{row['final_accuracy']:>6.3f} {row['accuracy_vs_float32'] or 0:>+7.3f} "
            f"{row['received_bytes_per_validator_round']:>11,} "
            f"{row['bytes_fewer_than_float32'] or 0:>6.1f}x {row['bytes_fewer_at_100mb']:>7.1f}x "
            f"{row['accepted']:>8}"
        )
    print(json.dumps({"bench": "codecs", "rows": rows}))


if __name__ == "__main__":
    main()
