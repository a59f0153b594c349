"""Learning at the pace of real training: five validators whose local training takes tens of
seconds per round, with weights of several megabytes (issue #14).

Targets: every learning round commits a model update; a round's wall time is at most
1.15 x (the slowest party's training plus the slowest evaluation); accuracy climbs as in the
fast case.

The task is digits-mlp made heavy in the genesis (a wide hidden layer: about 5 MB of weights;
many local epochs: 20 s or more of training per round with five trainers on this machine's two
cores). Real ``learnchain start`` processes from ``learnchain testnet`` (defaults: no empty
blocks, a 1 s commit pace), logging at debug level; every node logs each piece of ML work as an
interval of the host's monotonic clock, and each commit. A round is the time between two of
node0's commits. Per round the bench reports the slowest party's training (the contribution
trained from the round's model), the slowest evaluation (scoring the proposal), the proposer's
aggregation, consensus (from the aggregate to the commit, less the scoring: fetching the
proposal's weights, votes, the block write) and waiting (the rest: the commit pace and
contributions reaching the proposer, less what training overlapped); and the
test accuracy of the committed model (digits' held-out test set). The first round (start-up:
five processes loading at once) is reported but left out of the summary.

    .venv/bin/python bench/slow_learning.py [--rounds 6] [--hidden 17000] [--epochs 100]

Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from learnchain.consensus.types import Hash
from learnchain.ml.config import TaskConfig
from learnchain.node.localnet.cluster import LocalCluster
from learnchain.node.telemetry.logs import read_text_fields
from learnchain.proto import learnchain_pb2 as pb

VALIDATORS = 5
TRAINING = ("propose", "accept_and_train", "encode")
EVALUATION = ("decide",)
AGGREGATION = ("combine",)


def compute_weights_bytes(hidden: int) -> int:
    """The float32 weights of digits-mlp with ``hidden`` units."""
    return (64 * hidden + hidden + hidden * 10 + 10) * 4


def read_log(path: Path) -> tuple[list[tuple[str, float, float]], dict[int, float]]:
    """ML work intervals (kind, start, end) and commit times by height from one node's log."""
    work: list[tuple[str, float, float]] = []
    commits: dict[int, float] = {}
    for line in path.read_text().splitlines():
        fields = read_text_fields(line)
        if " ml work " in line:
            work.append((fields["work"], float(fields["started"]), float(fields["ended"])))
        elif " committed at " in line:
            commits[int(fields["height"])] = float(fields["at"])
    return work, commits


def slowest(
    logs: list[list[tuple[str, float, float]]], kinds: tuple[str, ...], start: float, end: float
) -> float:
    """The largest total time one node spent on ``kinds`` of work ending in (start, end]."""
    totals = [
        sum(e - s for kind, s, e in work if kind in kinds and start < e <= end) for work in logs
    ]
    return max(totals, default=0.0)


def last_end(
    logs: list[list[tuple[str, float, float]]], kinds: tuple[str, ...], start: float, end: float
) -> float | None:
    """When the last piece of ``kinds`` work ending in (start, end] ended, on any node."""
    ends = [e for work in logs for kind, _, e in work if kind in kinds and start < e <= end]
    return max(ends, default=None)


def evaluate(task: TaskConfig, weights: bytes) -> float:
    """The held-out test accuracy of committed weights."""
    from safetensors.torch import load

    from learnchain.ml.data import load_digits_pool
    from learnchain.ml.tasks import get_task
    from learnchain.ml.training import evaluate_state

    _, test = load_digits_pool(task.seed)
    return evaluate_state(get_task(task), load(weights), test).accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=17000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--partition", default="iid")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as scratch,
        LocalCluster(
            Path(scratch) / "net",
            VALIDATORS,
            *("--partition", args.partition, "--plateau-rounds", "0"),
            *("--round-deadline", "600", "--verdict-timeout", "300"),
        ) as net,
    ):
        task = net.set_task(hidden=args.hidden, local_epochs=args.epochs)
        weights_bytes = compute_weights_bytes(args.hidden)
        net.configure_all("log_level", "debug")
        started = time.monotonic()
        net.start_all()
        net.wait_for(range(VALIDATORS), args.rounds + 1, timeout=300 * (args.rounds + 1))
        wall = time.monotonic() - started
        history = net[0].query.History(
            pb.HistoryRequest(from_height=1, limit=args.rounds + 1), timeout=30
        )
        accuracy = {
            e.height: evaluate(task, net[0].fetch_model(Hash(e.model_hash)))
            for e in history.entries
        }
        logs = [read_log(net[i].log_path) for i in range(VALIDATORS)]
    work = [w for w, _ in logs]
    commits = logs[0][1]
    rows = []
    print(
        f"{'height':>6} {'update':>6} {'wall s':>7} {'train s':>8} {'eval s':>7} "
        f"{'aggr s':>7} {'cons. s':>7} {'waiting s':>9} {'ratio':>6} {'test acc':>8}"
    )
    for entry in history.entries:
        h = entry.height
        if h < 2 or h not in commits or h - 1 not in commits:
            continue
        start, end = commits[h - 1], commits[h]
        training = slowest(work, TRAINING, start, end)  # a span may start before (optimistic)
        evaluation = slowest(work, EVALUATION, start, end)
        aggregation = slowest(work, AGGREGATION, start, end)
        round_wall = end - start
        aggregated = last_end(work, AGGREGATION, start, end)
        # Consensus: from the aggregate to the commit, less the validators' scoring of it.
        consensus = (end - aggregated - evaluation) if aggregated is not None else 0.0
        waiting = round_wall - training - aggregation - evaluation - consensus
        row = {
            "height": h,
            "model_updated": entry.model_updated,
            "wall_seconds": round(round_wall, 3),
            "training_seconds": round(training, 3),
            "evaluation_seconds": round(evaluation, 3),
            "aggregation_seconds": round(aggregation, 3),
            "consensus_seconds": round(consensus, 3),
            "waiting_seconds": round(waiting, 3),
            "ratio": round(round_wall / (training + evaluation), 3)
            if training + evaluation
            else None,
            "test_accuracy": round(accuracy[h], 4),
        }
        rows.append(row)
        print(
            f"{h:>6} {'yes' if entry.model_updated else '-':>6} {round_wall:>7.2f} "
            f"{training:>8.2f} {evaluation:>7.2f} {aggregation:>7.2f} {consensus:>7.2f} "
            f"{waiting:>9.2f} {row['ratio'] or 0:>6.3f} {accuracy[h]:>8.3f}"
        )
    measured = rows[1:]  # the first round includes five processes starting at once
    summary = {
        "bench": "slow_learning",
        "validators": VALIDATORS,
        "weights_bytes": weights_bytes,
        "hidden": args.hidden,
        "local_epochs": args.epochs,
        "partition": args.partition,
        "rounds": len(rows),
        "every_round_updated": all(r["model_updated"] for r in rows),
        "training_seconds_median": statistics.median(r["training_seconds"] for r in measured),
        "evaluation_seconds_median": statistics.median(r["evaluation_seconds"] for r in measured),
        "round_seconds_median": statistics.median(r["wall_seconds"] for r in measured),
        "ratio_max": max(r["ratio"] or 0 for r in measured),
        "ratio_median": statistics.median(r["ratio"] or 0 for r in measured),
        "accuracy_by_round": [r["test_accuracy"] for r in rows],
        "wall_seconds": round(wall, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
