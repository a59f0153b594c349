"""Commit rate and learning-round time over a slow network: real validators, each in a network
namespace of its own (the chaos bed's network, tests/chaos/network.py), every link with a one-way
delay and a 100 Mbit/s rate limit.

Two measurements per (validators, delay):

- **commit rate**: ``train = false`` at the fastest pace (``--create-empty-blocks
  --commit-timeout 0``), as bench/commit_rate.py does on loopback: consensus alone. A height
  needs a proposal, a prevote and a precommit, three message delays: the limit at 100 ms is
  about 3.3 blocks/s.
- **learning round**: digits training on every validator (aggregate mode, no pause after a
  block, training that never stops): the seconds between model updates, p50, ML work included
  (all validators share this machine's cores, so the network's part is the difference from the
  0 ms row).

Needs root (``make chaos`` installs what the network needs).

    .venv/bin/python bench/slow_network.py [--validators 4,8] [--delays 0,25,100] [--seconds 20]
        [--vote-relay-from N]

Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

from processes import FASTEST_PACE

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from learnchain.node.localnet.cluster import LocalCluster  # noqa: E402
from tests.chaos.network import ChaosNetwork, LinkShape, find_missing  # noqa: E402

RATE_MBIT = 100.0


def start_cluster(net: ChaosNetwork, root: Path, validators: int, *args: str) -> LocalCluster:
    return LocalCluster(root, validators, *args, starting_ip=net.address(0), launcher=net.launcher)


def measure_commit_rate(
    net: ChaosNetwork, root: Path, validators: int, seconds: float, relay: tuple[str, ...]
) -> float:
    with start_cluster(net, root / "rate", validators, *FASTEST_PACE, *relay) as cluster:
        cluster.configure_all("train", "false")
        cluster.start_all()
        cluster.wait_for(range(validators), 3, timeout=300)
        start_height, start = cluster[0].height(), time.monotonic()
        time.sleep(seconds)
        blocks = cluster[0].height() - start_height
        return blocks / (time.monotonic() - start)


def measure_learning_round(
    net: ChaosNetwork, root: Path, validators: int, seconds: float, relay: tuple[str, ...]
) -> tuple[float | None, int]:
    """The p50 seconds between model updates at node0, and how many updates were seen."""
    args = ("--commit-timeout", "0", "--plateau-rounds", "0")
    with start_cluster(net, root / "learn", validators, *args, *relay) as cluster:
        cluster.start_all()
        cluster.wait_for(range(validators), 3, timeout=300)
        changes: list[float] = []
        model = b""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            status = cluster[0].status(timeout=2)
            if status is not None and status.model_hash != model:
                model = status.model_hash
                changes.append(time.monotonic())
            time.sleep(0.02)
        rounds = [b - a for a, b in pairwise(changes[1:])]
        return (statistics.median(rounds) if rounds else None), len(rounds)


def measure(
    validators: int, delay_ms: float, seconds: float, relay: tuple[str, ...]
) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as scratch, ChaosNetwork(validators) as net:
        net.heal(LinkShape(delay_ms=delay_ms, rate_mbit=RATE_MBIT))
        rate = measure_commit_rate(net, Path(scratch), validators, seconds, relay)
        round_seconds, rounds = measure_learning_round(
            net, Path(scratch), validators, seconds * 2, relay
        )
    return {
        "validators": validators,
        "vote_relay_from": relay[1] if relay else "default",
        "one_way_delay_ms": delay_ms,
        "rate_mbit": RATE_MBIT,
        "blocks_per_second": round(rate, 2),
        "learning_round_p50_s": None if round_seconds is None else round(round_seconds, 3),
        "learning_rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--validators", default="4,8")
    parser.add_argument("--delays", default="0,25,100")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--vote-relay-from",
        type=int,
        help="the genesis parameter (default: the chain's, relaying from 8 validators on)",
    )
    args = parser.parse_args()
    relay = () if args.vote_relay_from is None else ("--vote-relay-from", str(args.vote_relay_from))
    missing = find_missing()
    if missing is not None:
        sys.exit(f"slow_network: {missing}")
    rows = [
        measure(int(n), float(d), args.seconds, relay)
        for n in args.validators.split(",")
        for d in args.delays.split(",")
    ]
    print(f"{'validators':>10} {'delay ms':>9} {'blocks/s':>9} {'round p50 s':>12} {'rounds':>7}")
    for r in rows:
        print(
            f"{r['validators']:>10} {r['one_way_delay_ms']:>9} {r['blocks_per_second']:>9} "
            f"{r['learning_round_p50_s']!s:>12} {r['learning_rounds']:>7}"
        )
    print(json.dumps({"bench": "slow_network", "runs": rows}))


if __name__ == "__main__":
    main()
