"""What an idle chain costs: a default four-validator testnet after training has ended by its own
rule (issue #14).

Targets: at most 3 % of a core and at most 100 KB of disk per validator per minute. Before
issue #14 the same testnet committed about 24 heights a second forever, each retraining the
model: about 43 % of a core and 1.8 MB a minute per validator.

``learnchain testnet --validators 4`` with its defaults (no empty blocks, a 1 s commit pace, the
plateau rule), started as real processes; once node0 reports that training ended, the bench
waits a few seconds for the last blocks and then measures each validator's CPU time (its
process and children, from /proc) and the growth of its data directory over ``--seconds``.

    .venv/bin/python bench/idle.py [--seconds 120] [--empty-blocks]

Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from processes import cpu_seconds

from learnchain.node.localnet.cluster import ClusterError, LocalCluster

VALIDATORS = 4
SETTLE_SECONDS = 5


def disk_bytes(path: Path) -> int:
    """Bytes of every file under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def wait_until_training_ended(net: LocalCluster, timeout: float) -> tuple[int, str]:
    """Block until node0 says training ended; the height it ended at and why."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        net.check_alive()
        status = net[0].status()
        if status is not None and status.learning.end:
            reason = {1: "budget", 2: "target", 3: "plateau"}[status.learning.end]
            return status.learning.end_height - 1, reason
        time.sleep(1)
    raise ClusterError(f"training did not end within {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument(
        "--empty-blocks",
        action="store_true",
        help="with create_empty_blocks = true: an empty block every commit pace (1 s)",
    )
    args = parser.parse_args()
    flags = ("--create-empty-blocks",) if args.empty_blocks else ()
    with (
        tempfile.TemporaryDirectory() as scratch,
        LocalCluster(Path(scratch) / "net", VALIDATORS, *flags) as net,
    ):
        net.start_all()
        ended_at, reason = wait_until_training_ended(net, timeout=900)
        time.sleep(SETTLE_SECONDS)
        homes = [net[i].home / "data" for i in range(VALIDATORS)]
        heights_before = [net[i].height() for i in range(VALIDATORS)]
        cpu_before = [cpu_seconds(net[i].pid) for i in range(VALIDATORS)]
        disk_before = [disk_bytes(home) for home in homes]
        time.sleep(args.seconds)
        cpu = [cpu_seconds(net[i].pid) - cpu_before[i] for i in range(VALIDATORS)]
        disk = [disk_bytes(homes[i]) - disk_before[i] for i in range(VALIDATORS)]
        heights = [net[i].height() - heights_before[i] for i in range(VALIDATORS)]
    minutes = args.seconds / 60
    core_percent = [100 * c / args.seconds for c in cpu]
    disk_kb_per_minute = [d / 1024 / minutes for d in disk]
    print(f"training ended at height {ended_at} ({reason}); measured for {args.seconds:.0f} s")
    print(f"{'node':>4} {'% of a core':>12} {'disk KB/min':>12} {'new heights':>12}")
    for i in range(VALIDATORS):
        print(f"{i:>4} {core_percent[i]:>12.2f} {disk_kb_per_minute[i]:>12.1f} {heights[i]:>12}")
    print(
        json.dumps(
            {
                "bench": "idle",
                "validators": VALIDATORS,
                "empty_blocks": args.empty_blocks,
                "seconds": args.seconds,
                "training_ended_at": ended_at,
                "training_end": reason,
                "core_percent_max": round(max(core_percent), 2),
                "disk_kb_per_minute_max": round(max(disk_kb_per_minute), 1),
                "new_heights": heights,
            }
        )
    )


if __name__ == "__main__":
    main()
