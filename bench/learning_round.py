"""Learning-round overhead and memory of validators that train: 5 real processes on digits.

Targets (issue #4): learning round overhead (round wall time minus the ML work) <= 25 ms p50
with 5 validators on digits; resident memory per validator on digits <= 400 MB.

Five ``learnchain start`` processes from ``learnchain testnet`` (aggregate mode, digits-mlp,
Dirichlet 0.5, no pause after a block: ``--commit-timeout 0``, and training that does not end:
``--plateau-rounds 0``) run until a height, logging at debug level. Every node logs each piece
of ML work (training its contribution, aggregating, checking and scoring weights) as an interval
of the host's monotonic clock, and each commit. A round is the time between two of node0's
commits; its ML time is the union of every node's ML intervals within it (time during which
some learner was working, the round waiting on it); the overhead is the rest: messages,
signatures, consensus and storage with no learner at work anywhere. The first heights
(start-up) are left out.

For comparison it also prints each node's own view from its Prometheus histograms
(``learnchain_consensus_round_overhead_seconds``: time between commits minus that node's own ML
work), which also counts waiting for the other nodes' training: five trainers share 2 cores here.

    .venv/bin/python bench/learning_round.py [--heights 40]

Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import urllib.request
from pathlib import Path

from processes import rss_mb

from learnchain.node.localnet.cluster import LocalCluster
from learnchain.node.telemetry.logs import read_text_fields

VALIDATORS = 5
WARM_UP_HEIGHTS = 5


def read_histogram(text: str, name: str) -> list[tuple[float, float]]:
    """Cumulative (upper bound, count) buckets of one histogram in Prometheus text format."""
    buckets = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            bound = line.split('le="')[1].split('"')[0]
            buckets.append((float(bound), float(line.rsplit(" ", 1)[1])))
    return buckets


def compute_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """The q-quantile of cumulative buckets, linear within the bucket (as Prometheus does)."""
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


def read_timeline(logs: list[Path]) -> tuple[dict[int, float], list[tuple[float, float]]]:
    """node0's commit times by height, and every node's ML work intervals."""
    commits: dict[int, float] = {}
    work: list[tuple[float, float]] = []
    for index, path in enumerate(logs):
        for line in path.read_text().splitlines():
            fields = read_text_fields(line)
            if " ml work " in line:
                work.append((float(fields["started"]), float(fields["ended"])))
            elif index == 0 and " committed at " in line:
                commits[int(fields["height"])] = float(fields["at"])
    return commits, work


def compute_union_within(intervals: list[tuple[float, float]], start: float, end: float) -> float:
    """Length of the union of ``intervals`` clipped to [start, end]."""
    clipped = sorted((max(a, start), min(b, end)) for a, b in intervals if b > start and a < end)
    total, reach = 0.0, start
    for a, b in clipped:
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total


def compute_rounds(
    commits: dict[int, float], work: list[tuple[float, float]], first: int
) -> list[tuple[float, float]]:
    """(round wall time, ML time within it) for each height from ``first`` on."""
    return [
        (commits[h] - commits[h - 1], compute_union_within(work, commits[h - 1], commits[h]))
        for h in sorted(commits)
        if h >= first and h - 1 in commits
    ]


def median_ms(values: list[float]) -> float:
    return round(1000 * statistics.median(values), 1)


def merge(histograms: list[list[tuple[float, float]]]) -> list[tuple[float, float]]:
    return [(h[0], sum(x[i][1] for x in histograms)) for i, h in enumerate(histograms[0])]


def measure(heights: int) -> dict[str, object]:
    with (
        tempfile.TemporaryDirectory() as scratch,
        LocalCluster(
            Path(scratch) / "net",
            VALIDATORS,
            "--partition",
            "dirichlet:0.5",
            *("--commit-timeout", "0", "--plateau-rounds", "0"),
        ) as net,
    ):
        net.configure_all("log_level", "debug")
        net.start_all()
        net.wait_for([0], heights, timeout=600)
        texts = [
            urllib.request.urlopen(net[i].metrics_url, timeout=10).read().decode()
            for i in range(VALIDATORS)
        ]
        memory = [rss_mb(net[i].pid) for i in range(VALIDATORS)]
        net.close()
        commits, work = read_timeline([net[i].log_path for i in range(VALIDATORS)])

    def p50(name: str) -> float:
        return round(
            1000 * compute_quantile(merge([read_histogram(t, name) for t in texts]), 0.5), 1
        )

    rounds = compute_rounds(commits, work, first=WARM_UP_HEIGHTS)
    return {
        "validators": VALIDATORS,
        "heights": heights,
        "rounds_measured": len(rounds),
        "p50_round_ms": median_ms([r[0] for r in rounds]),
        "p50_round_ml_ms": median_ms([r[1] for r in rounds]),
        "p50_round_overhead_ms": median_ms([r[0] - r[1] for r in rounds]),
        "p50_own_learner_ms_per_block": p50("learnchain_learning_learner_seconds"),
        "p50_overhead_beside_own_learner_ms": p50("learnchain_consensus_round_overhead_seconds"),
        "rss_mb_max": round(max(memory), 1),
        "rss_mb_mean": round(sum(memory) / len(memory), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--heights", type=int, default=40)
    row = measure(parser.parse_args().heights)
    print(f"{'round ms':>9} {'ML ms':>6} {'overhead ms':>11} {'RSS max MB':>10}  (p50s)")
    print(
        f"{row['p50_round_ms']:>9} {row['p50_round_ml_ms']:>6} "
        f"{row['p50_round_overhead_ms']:>11} {row['rss_mb_max']:>10}"
    )
    print(json.dumps({"bench": "learning_round", **row}))


if __name__ == "__main__":
    main()
