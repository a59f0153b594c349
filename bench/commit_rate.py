"""Empty-block commit rate of real validator processes on loopback, and their memory.

Targets (issue #4): >= 50 blocks/s with 4 validators (p50 commit interval <= 20 ms), >= 10 with
16; resident memory per validator on digits <= 400 MB. Validators run with ``train = false``
(blocks carry no model update) and at the fastest pace, set explicitly (``--create-empty-blocks
--commit-timeout 0``: the defaults rest between learning rounds and pause 1 s after a block), so
this measures consensus, gRPC and LevelDB alone.

    .venv/bin/python bench/commit_rate.py [--validators 4,16] [--seconds 15] [--vote-relay-from N]

``--vote-relay-from`` overrides the genesis parameter (0: every validator sends every vote to
every peer; default: the chain's default, relaying from 8 validators on).

Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from itertools import pairwise
from pathlib import Path

from processes import FASTEST_PACE, rss_mb

from learnchain.node.localnet.cluster import LocalCluster


def measure(validators: int, seconds: float, relay_from: int | None) -> dict[str, object]:
    relay = () if relay_from is None else ("--vote-relay-from", str(relay_from))
    with (
        tempfile.TemporaryDirectory() as scratch,
        LocalCluster(Path(scratch) / "net", validators, *relay, *FASTEST_PACE) as net,
    ):
        net.configure_all("train", "false")
        net.start_all()
        net.wait_for([0], 3, timeout=300)
        first_seen: dict[int, float] = {}
        start_height, start = net[0].height(), time.monotonic()
        while time.monotonic() - start < seconds:
            first_seen.setdefault(net[0].height(), time.monotonic())
            time.sleep(0.002)
        end_height, elapsed = net[0].height(), time.monotonic() - start
        memory = [rss_mb(net[i].pid) for i in range(validators)]
    seen = sorted(first_seen.items())
    intervals = [(t2 - t1) / (h2 - h1) * 1000 for (h1, t1), (h2, t2) in pairwise(seen) if h2 > h1]
    return {
        "validators": validators,
        "vote_relay_from": relay_from,
        "blocks": end_height - start_height,
        "seconds": round(elapsed, 2),
        "blocks_per_second": round((end_height - start_height) / elapsed, 1),
        "p50_commit_interval_ms": round(statistics.median(intervals), 1) if intervals else None,
        "rss_mb_max": round(max(memory), 1),
        "rss_mb_mean": round(statistics.fmean(memory), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--validators", default="4,16")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--vote-relay-from", type=int, default=None)
    args = parser.parse_args()
    rows = [measure(int(n), args.seconds, args.vote_relay_from) for n in args.validators.split(",")]
    print(
        f"{'validators':>10} {'blocks/s':>9} {'p50 ms':>7} {'RSS max MB':>11} {'RSS mean MB':>12}"
    )
    for r in rows:
        print(
            f"{r['validators']:>10} {r['blocks_per_second']:>9} {r['p50_commit_interval_ms']:>7} "
            f"{r['rss_mb_max']:>11} {r['rss_mb_mean']:>12}"
        )
    print(json.dumps({"bench": "commit_rate", "runs": rows}))


if __name__ == "__main__":
    main()
