"""The server's (outer) step against today's default (issue #32): final accuracy for outer
learning rates and momenta, with the default local training and with many local steps.

Every configuration is one ``bench/quality.py`` run (five parties, 30 rounds, aggregate mode,
the default rule; non-IID Dirichlet 0.5 on digits, IID on scikit-learn's breast cancer set
written out as a CSV), with ``--server-learning-rate``, ``--server-momentum`` and
``--local-epochs`` the only changes. Today's default is learning rate 1 and momentum 0.7
(FedAvgM); DiLoCo's outer optimizer uses learning rate 0.7 and momentum 0.9 (Nesterov).

    .venv/bin/python bench/outer_optimizer.py [--seeds 0-4,5-9]
        [--steps 1:0.7,0.7:0.7,0.7:0.9,1:0] [--local-epochs 3,10] [--jobs 2]

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from update_codecs import run_quality, write_breast_cancer

from learnchain.ml.config import TaskConfig


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="0-4,5-9", help="digits seed ranges, each a row")
    parser.add_argument("--steps", default="1:0.7,0.7:0.7,0.7:0.9,1:0", help="LR:MOMENTUM,...")
    parser.add_argument("--local-epochs", default="3,10")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2, help="quality runs at a time")
    args = parser.parse_args()
    steps = [tuple(float(x) for x in step.split(":")) for step in args.steps.split(",")]
    common = ["--parties", "5", "--partition", "dirichlet:0.5", "--rounds", str(args.rounds)]
    with tempfile.TemporaryDirectory() as scratch:
        data_file = write_breast_cancer(Path(scratch) / "breast_cancer.csv")
        cases = [(f"digits {seeds}", ["--seeds", seeds]) for seeds in args.seeds.split(",")]
        file_options = ["--seeds", "0-4", "--data-file", str(data_file), "--partition", "iid"]
        cases.append(("breast cancer 0-4", file_options))
        jobs = [
            (case, int(epochs), step)
            for case in cases
            for epochs in args.local_epochs.split(",")
            for step in steps
        ]

        def run(job: tuple[tuple[str, list[str]], int, tuple[float, ...]]) -> dict[str, object]:
            (_, options), epochs, (rate, momentum) = job
            extra = ["--local-epochs", str(epochs), "--server-learning-rate", str(rate)]
            extra += ["--server-momentum", str(momentum)]
            return run_quality([*common, *options, *extra])

        with ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(run, jobs))
    rows = [
        {
            "data": case[0],
            "local_epochs": epochs,
            "server_learning_rate": rate,
            "server_momentum": momentum,
            "final_accuracy": result["final_accuracy_mean"],
            "accepted": result["accepted"],
        }
        for (case, epochs, (rate, momentum)), result in zip(jobs, results, strict=True)
    ]
    default_rate, default_momentum = TaskConfig.server_learning_rate, TaskConfig.server_momentum
    baseline = {
        (r["data"], r["local_epochs"]): r["final_accuracy"]
        for r in rows
        if (r["server_learning_rate"], r["server_momentum"]) == (default_rate, default_momentum)
    }
    print(f"{'data':<18} {'epochs':>6} {'lr':>5} {'mom':>5} {'final':>6} {'Δ default':>9}")
    for row in rows:
        base = baseline.get((row["data"], row["local_epochs"]))
        final = float(row["final_accuracy"])  # type: ignore[arg-type]
        row["vs_default"] = None if base is None else round(final - float(base), 4)  # type: ignore[arg-type]
        print(
            f"{row['data']:<18} {row['local_epochs']:>6} {row['server_learning_rate']:>5} "
            f"{row['server_momentum']:>5} {final:>6.3f} {row['vs_default'] or 0:>+9.3f}"
        )
    print(json.dumps({"bench": "outer_optimizer", "rows": rows}))


if __name__ == "__main__":
    main()
