"""A codec against float32 under attack, seed by seed (issue #32): the paired difference in final
accuracy, its mean, standard error and median over the seeds, and each seed's.

Two measures: the final accuracy, and the mean over the last rotation of proposers (the last
five rounds). With five parties and 30 rounds the last round is always the fifth party's turn,
the attacker's, so the final model is the one right after its own proposal.

A five-seed mean hides what decides these runs: one seed whose chain stalls (every attempt at a
model voted down, so learning stops) moves the mean by several hundredths. Each seed here is its
own ``bench/quality.py`` run (five parties, 30 rounds, non-IID Dirichlet 0.5 digits, the default
rule), once with float32 and once with the codec, so each difference is paired. ``absent`` runs
each attack with the attacker's contribution left out of every aggregate (it still votes): the
ceiling a perfect defence could reach, with the codec and without it; a defence's shortfall is
its accuracy under attack less that ceiling.

    .venv/bin/python bench/codec_attacks.py [--codec topk:0.01] [--seeds 0-9]
        [--attacks none,label_flip:1,backdoor:1,ipm:1] [--absent ipm:1] [--hidden 192] [--jobs 2]
        [--attackers-fresh] [--attackers-median-norm] [--aggregation RULE]

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from quality import parse_seeds

BENCH = Path(__file__).resolve().parent


# how attackers treat the codec (bench/quality.py): no error feedback, an update scaled to the
# honest median norm
ATTACKER_OPTIONS = ("--attackers-fresh", "--attackers-median-norm")

MEASURES = {  # bench/quality.py's JSON keys
    "final": "final_accuracy_mean",
    "last rotation": "last_rotation_accuracy_mean",
    "backdoor success": "attack_success_rate_mean",  # only the backdoor's (higher is worse)
}


def run_seed(
    seed: int,
    codec: str,
    attack: str,
    absent: bool,
    hidden: int | None,
    options: list[str],
    aggregation: str | None = None,
) -> dict[str, float]:
    """One seed's accuracy by each of ``MEASURES``."""
    command = [
        sys.executable,
        str(BENCH / "quality.py"),
        "--output",
        "json",
        "--parties",
        "5",
        "--partition",
        "dirichlet:0.5",
        "--rounds",
        "30",
        "--seeds",
        str(seed),
        "--codec",
        codec,
    ]
    if attack != "none":
        command += ["--byzantine", attack]
    if absent:
        command.append("--attackers-absent")
    if hidden is not None:
        command += ["--hidden", str(hidden)]
    if aggregation is not None:
        command += ["--aggregation", aggregation]
    command += options
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        measure: float(result[key]) for measure, key in MEASURES.items() if result[key] is not None
    }


def compute_summary(differences: list[float]) -> dict[str, float | None]:
    """Mean, standard error (None for one seed) and median of paired differences."""
    error = None
    if len(differences) > 1:
        error = round(statistics.stdev(differences) / math.sqrt(len(differences)), 4)
    return {
        "mean": round(statistics.mean(differences), 4),
        "standard_error": error,
        "median": round(statistics.median(differences), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--codec", default="topk:0.01")
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--attacks", default="none,label_flip:1,backdoor:1,ipm:1")
    parser.add_argument(
        "--absent", default="ipm:1", help="attacks also run with the attacker left out (ceiling)"
    )
    parser.add_argument("--hidden", type=int, default=None, help="the MLP's width (192)")
    parser.add_argument("--aggregation", default=None, help="the rule, for both codecs")
    parser.add_argument("--jobs", type=int, default=2, help="quality runs at a time")
    for option in ATTACKER_OPTIONS:
        parser.add_argument(option, action="store_true", help="passed to bench/quality.py")
    args = parser.parse_args()
    options = [o for o in ATTACKER_OPTIONS if getattr(args, o[2:].replace("-", "_"))]
    seeds = parse_seeds(args.seeds)
    cases = [(a, False) for a in args.attacks.split(",") if a]
    cases += [(a, True) for a in args.absent.split(",") if a]
    jobs = [
        (attack, absent, seed, codec)
        for attack, absent in cases
        for seed in seeds
        for codec in ("float32", args.codec)
    ]
    with ThreadPoolExecutor(args.jobs) as pool:
        accuracies = list(
            pool.map(
                lambda job: run_seed(
                    job[2], job[3], job[0], job[1], args.hidden, options, args.aggregation
                ),
                jobs,
            )
        )
    by_job = dict(zip(jobs, accuracies, strict=True))
    rows = []
    for measure in MEASURES:
        if not any(measure in by_job[(a, b, seeds[0], "float32")] for a, b in cases):
            continue
        print(
            f"{measure + ' accuracy':<22} {'absent':<6} {'float32':>7} {'codec':>7} "
            f"{'Δ mean ± se':>16} {'median':>7}  per seed"
        )
        for attack, absent in cases:
            if measure not in by_job[(attack, absent, seeds[0], "float32")]:
                continue
            base = [by_job[(attack, absent, s, "float32")][measure] for s in seeds]
            coded = [by_job[(attack, absent, s, args.codec)][measure] for s in seeds]
            differences = [c - b for b, c in zip(base, coded, strict=True)]
            summary = compute_summary(differences)
            rows.append(
                {
                    "measure": measure,
                    "attack": attack,
                    "attackers_absent": absent,
                    "float32": round(statistics.mean(base), 4),
                    "codec": round(statistics.mean(coded), 4),
                    "difference": summary,
                    "per_seed": [round(d, 4) for d in differences],
                }
            )
            error = summary["standard_error"]
            print(
                f"{attack:<22} {'yes' if absent else 'no':<6} {statistics.mean(base):>7.3f} "
                f"{statistics.mean(coded):>7.3f} {summary['mean']:>+8.3f} "
                f"± {math.nan if error is None else error:.3f} "
                f"{summary['median']:>+7.3f}  " + " ".join(f"{d:+.3f}" for d in differences)
            )
    print(
        json.dumps(
            {
                "bench": "codec_attacks",
                "codec": args.codec,
                "seeds": seeds,
                "hidden": args.hidden,
                "aggregation": args.aggregation,
                "attacker_options": options,
                "rows": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
