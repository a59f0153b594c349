"""learnchain beside Flower's strategies, on identical shards and attacks.

Flower 1.42 needs protobuf 6 and learnchain protobuf 7, so Flower runs in a virtual environment
of its own (``bench/peers/.venv-flower``, made on first use from
``bench/peers/flower-requirements.txt``). There the same parties as ``bench/quality.py``'s
(``ml/parties.py``: same shards, same training, same attackers) train each round from the global
model, and a Flower strategy's own ``aggregate_fit`` turns their results into the next global
model, as Flower's server does each round; nothing votes, every aggregate is taken. learnchain's
rows come from ``bench/quality.py``'s trial in this environment (stake-selected proposer, robust
aggregate, the private-data vote).

    .venv/bin/python bench/peers/flower.py --seeds 0-4 --rounds 30 \\
        --scenarios none,label_flip:1,backdoor:1,alie:1,ipm:1,min_max:1,adaptive:1,copycat:1

With ``--data-file FILE [--label-column C]`` both sides split the user's own CSV or NPZ (a fifth
held out for the test), as ``bench/quality.py --data-file`` does. Any learnchain option of
``bench/quality.py`` (``--aggregation``, ``--reputation``, ...) goes after ``--learnchain``:
``--learnchain --reputation 0.95``.

Prints one table (mean final accuracy over the seeds; for backdoors also the attack success
rate) and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
VENV = HERE / ".venv-flower"
REQUIREMENTS = HERE / "flower-requirements.txt"
STRATEGIES = ("FedAvg", "FedAvgM", "FedTrimmedAvg", "FedMedian", "Krum")
SERVER_MOMENTUM = 0.7  # FedAvgM, as learnchain's default server momentum
TRIM = 0.2  # FedTrimmedAvg's beta: a fifth cut from each end


def parse_scenario(text: str) -> list[str]:
    """``none`` or ``KIND:COUNT[+KIND:COUNT]``: the attackers of one scenario."""
    if text == "none":
        return []
    attacks: list[str] = []
    for part in text.split("+"):
        kind, _, count = part.partition(":")
        attacks += [kind] * int(count or 1)
    return attacks


# --- inside Flower's environment ----------------------------------------------------------------


def run_flower(args: argparse.Namespace) -> None:
    """Every (scenario, strategy, seed): its final accuracy (and backdoor success), one JSON
    line each."""
    import numpy as np
    import torch
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.server import strategy as flower

    from learnchain.ml.adversaries import compute_triggered_test
    from learnchain.ml.parties import (
        compute_default_trial_config,
        load_trial_data,
        make_party_data,
        make_party_learners,
        propose_round,
    )
    from learnchain.ml.tasks import get_task
    from learnchain.ml.training import evaluate_state

    torch.set_num_threads(1)
    task_config = compute_default_trial_config(args.data_file)

    def make_strategy(name: str, attackers: int, initial: list[Any]) -> Any:
        common = {"min_fit_clients": 1, "min_evaluate_clients": 1, "min_available_clients": 1}
        if name == "FedAvgM":
            return flower.FedAvgM(
                **common,
                server_momentum=SERVER_MOMENTUM,
                initial_parameters=ndarrays_to_parameters(initial),
            )
        if name == "FedTrimmedAvg":
            return flower.FedTrimmedAvg(**common, beta=TRIM)
        if name == "Krum":
            return flower.Krum(**common, num_malicious_clients=attackers)
        return getattr(flower, name)(**common)

    for scenario in args.scenarios.split(","):
        attacks = parse_scenario(scenario)
        for name in args.strategies.split(","):
            for seed in parse_seeds(args.seeds):
                torch.manual_seed(seed)
                config, pool, test = load_trial_data(
                    replace(task_config, seed=seed), args.data_file, args.label_column, seed
                )
                task = get_task(config)
                parties = make_party_data(pool, args.parties, args.partition, seed)
                learners = make_party_learners(task, parties, seed, attacks)
                names = sorted(learners[0].current())
                initial = [learners[0].current()[n].numpy() for n in names]
                strategy = make_strategy(name, len(attacks), initial)
                for server_round in range(1, args.rounds + 1):
                    results = []
                    for i, state in propose_round(learners).items():
                        samples = learners[i].samples
                        arrays = [state[n].detach().numpy() for n in names]
                        fit = FitRes(
                            Status(Code.OK, ""), ndarrays_to_parameters(arrays), samples, {}
                        )
                        results.append((None, fit))
                    parameters, _ = strategy.aggregate_fit(server_round, results, [])
                    arrays = parameters_to_ndarrays(parameters)
                    state = {
                        n: torch.from_numpy(np.asarray(a, dtype=np.float32)).reshape(
                            learners[0].current()[n].shape
                        )
                        for n, a in zip(names, arrays, strict=True)
                    }
                    for learner in learners:
                        learner.accept(state)
                final = learners[0].current()
                row = {
                    "system": f"Flower {name}",
                    "scenario": scenario,
                    "seed": seed,
                    "final_accuracy": evaluate_state(task, final, test).accuracy,
                    "attack_success_rate": evaluate_state(
                        task, final, compute_triggered_test(test)
                    ).accuracy
                    if "backdoor" in attacks
                    else None,
                }
                print(json.dumps(row), flush=True)


def parse_seeds(text: str) -> list[int]:
    """``0-4`` or ``5,7``."""
    if "-" in text:
        first, last = text.split("-")
        return list(range(int(first), int(last) + 1))
    return [int(part) for part in text.split(",")]


# --- in learnchain's environment ----------------------------------------------------------------


def ensure_flower_environment() -> Path:
    """The Flower environment's python, made on first use."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".installed"
    if stamp.exists() and stamp.read_text() == REQUIREMENTS.read_text():
        return python
    print(f"setting up Flower in {VENV} (once)...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(REQUIREMENTS.read_text())
    return python


def import_quality() -> Any:
    """bench/quality.py, as a module."""
    if str(HERE.parent) not in sys.path:
        sys.path.insert(0, str(HERE.parent))
    import quality

    return quality


def learnchain_trial_args(args: argparse.Namespace, scenario: str) -> tuple[Any, list[str]]:
    """bench/quality.py's arguments for one scenario (its own parser: every option it has)."""
    quality = import_quality()

    byzantine = [f"--byzantine={part}" for part in scenario.split("+") if scenario != "none"]
    parsed: tuple[Any, list[str]] = quality.parse_trial_args(
        [
            *("--parties", str(args.parties), "--partition", args.partition),
            *("--rounds", str(args.rounds), "--threshold", "2/3"),
            *("--local-only-epochs", "1", "--pooled-epochs", "1"),
            *(("--data-file", args.data_file) if args.data_file else ()),
            *("--label-column", args.label_column),
            *byzantine,
            *args.learnchain,
        ]
    )
    return parsed


def run_learnchain(args: argparse.Namespace) -> list[dict[str, Any]]:
    """learnchain's rows: bench/quality.py's trial for each scenario and seed."""
    import torch

    quality = import_quality()

    torch.set_num_threads(1)  # as bench/quality.py runs its trials
    rows = []
    for scenario in args.scenarios.split(","):
        trial_args, attacks = learnchain_trial_args(args, scenario)
        for seed in parse_seeds(args.seeds):
            trial = quality.run_trial(trial_args, seed, attacks)
            rows.append(
                {
                    "system": "learnchain",
                    "scenario": scenario,
                    "seed": seed,
                    "final_accuracy": trial.final_accuracy,
                    "attack_success_rate": trial.attack_success_rate,
                }
            )
    return rows


def summarise(rows: list[dict[str, Any]], scenarios: list[str]) -> dict[str, dict[str, Any]]:
    """Mean final accuracy (and backdoor success) by system and scenario."""
    table: dict[str, dict[str, Any]] = {}
    for system in dict.fromkeys(r["system"] for r in rows):
        table[system] = {}
        for scenario in scenarios:
            mine = [r for r in rows if r["system"] == system and r["scenario"] == scenario]
            if not mine:
                continue
            cell: dict[str, Any] = {
                "accuracy": round(statistics.fmean(r["final_accuracy"] for r in mine), 4)
            }
            if mine[0]["attack_success_rate"] is not None:
                cell["attack_success_rate"] = round(
                    statistics.fmean(r["attack_success_rate"] for r in mine), 4
                )
            table[system][scenario] = cell
    return table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--parties", type=int, default=5)
    parser.add_argument("--partition", default="dirichlet:0.5")
    parser.add_argument("--scenarios", default="none,label_flip:1,backdoor:1,alie:1,ipm:1")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--data-file", default="", help="the user's CSV or NPZ instead of digits")
    parser.add_argument("--label-column", default="label")
    parser.add_argument(
        "--learnchain",
        nargs=argparse.REMAINDER,
        default=[],
        help="the rest: bench/quality.py options for learnchain's side",
    )
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        run_flower(args)
        return
    python = ensure_flower_environment()
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    shown = subprocess.run(
        [str(python), __file__, "--inside", *sys.argv[1:]],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if shown.returncode != 0:
        raise SystemExit(f"Flower's run failed:\n{shown.stderr[-3000:]}")
    rows = [json.loads(line) for line in shown.stdout.splitlines() if line.startswith("{")]
    rows = run_learnchain(args) + rows
    scenarios = args.scenarios.split(",")
    table = summarise(rows, scenarios)
    print(f"{args.parties} parties, {args.partition}, {args.rounds} rounds, seeds {args.seeds}")
    print(f"{'system':<22}" + "".join(f"{s:>16}" for s in scenarios))
    for system, cells in table.items():
        shown_cells = []
        for scenario in scenarios:
            cell = cells.get(scenario, {})
            text = f"{cell.get('accuracy', float('nan')):.3f}"
            if "attack_success_rate" in cell:
                text += f" ({cell['attack_success_rate']:.2f})"
            shown_cells.append(f"{text:>16}")
        print(f"{system:<22}" + "".join(shown_cells))
    print(f"learnchain: bench/quality.py {' '.join(args.learnchain) or '(the default genesis)'}")
    print(
        json.dumps(
            {
                "bench": "flower",
                "seeds": parse_seeds(args.seeds),
                "rounds": args.rounds,
                "parties": args.parties,
                "partition": args.partition,
                "data_file": args.data_file or None,
                "learnchain_options": args.learnchain,
                "table": table,
            }
        )
    )


if __name__ == "__main__":
    main()
