"""Empty-block commit rate of real validator processes on loopback, and their memory.

Targets (issue #4): >= 50 blocks/s with 4 validators (p50 commit interval <= 20 ms), >= 10 with
16; resident memory per validator on digits <= 400 MB. Validators run with ``train = false``
(blocks carry no model update), so this measures consensus, gRPC and LevelDB alone.

    .venv/bin/python bench/commit_rate.py [--validators 4,16] [--seconds 15] [--vote-relay-from N]

``--vote-relay-from`` overrides the genesis parameter (0: every validator sends every vote to
every peer; default: the chain's default, relaying from 8 validators on).

Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

from processes import make_height_reader, rss_mb, start_node, stop_nodes

from node.testnet import find_free_base_port

ROOT = Path(__file__).resolve().parents[1]


def measure(validators: int, seconds: float, relay_from: int | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "net"
        base = find_free_base_port(validators, start=40000, step=97)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "node.cli",
                "testnet",
                "--validators",
                str(validators),
                "--output",
                str(root),
                "--base-port",
                str(base),
            ],
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
        for i in range(validators):
            config = root / f"node{i}" / "config.toml"
            config.write_text(config.read_text().replace("train = true", "train = false"))
            if relay_from is not None:
                genesis_file = root / f"node{i}" / "genesis.json"
                genesis = json.loads(genesis_file.read_text())
                genesis["params"]["vote_relay_from"] = relay_from
                genesis_file.write_text(json.dumps(genesis))
        processes = [start_node(root / f"node{i}") for i in range(validators)]
        height = make_height_reader(f"127.0.0.1:{base}")
        try:
            deadline = time.monotonic() + 300
            while height() < 3:
                if time.monotonic() > deadline:
                    raise RuntimeError("the testnet did not start committing")
                time.sleep(0.2)
            first_seen: dict[int, float] = {}
            start_height, start = height(), time.monotonic()
            while time.monotonic() - start < seconds:
                h = height()
                first_seen.setdefault(h, time.monotonic())
                time.sleep(0.002)
            end_height, elapsed = height(), time.monotonic() - start
            memory = [rss_mb(p.pid) for p in processes]
        finally:
            stop_nodes(processes)
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
