"""A hung validator against a dead one (issue #16): the commit rate and the model updates of a
four-validator testnet while one validator is paused (SIGSTOP: its connections stay open and
nothing answers), and while it is killed.

Target: with one of four paused, at least half the healthy rate, and training goes on.

``learnchain testnet --validators 4`` with its defaults (no empty blocks, a 1 s commit pace) and
the plateau rule off so that training runs throughout. After a warm-up, four phases of
``--seconds`` each: healthy, node3 paused, node3 resumed, node3 killed. For each phase, the heights
node0 committed per second and the model updates among them (from ``query history``).

    .venv/bin/python bench/gray_failure.py [--seconds 30]

Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

from processes import training_testnet

from learnchain.node.localnet.cluster import LocalCluster
from learnchain.proto import learnchain_pb2 as pb

VALIDATORS = 4
WARM_UP_HEIGHT = 5
VICTIM = 3


def count_updates(net: LocalCluster, first: int, last: int) -> tuple[int, int]:
    """Model updates committed at heights first..last, and heights decided after round 0
    (node0's history)."""
    if last < first:
        return 0, 0
    history = net[0].query.History(
        pb.HistoryRequest(from_height=first, limit=last - first + 1), timeout=30
    )
    entries = history.entries
    return sum(e.model_updated for e in entries), sum(e.round > 0 for e in entries)


def measure_phase(net: LocalCluster, name: str, seconds: float) -> dict[str, object]:
    """Heights and model updates node0 commits during ``seconds``."""
    start = net[0].height()
    time.sleep(seconds)
    end = net[0].height()
    updates, later_rounds = count_updates(net, start + 1, end)
    return {
        "phase": name,
        "blocks_per_second": round((end - start) / seconds, 3),
        "model_updates": updates,
        "heights": end - start,
        "after_round_0": later_rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    phases = []
    with training_testnet(VALIDATORS, WARM_UP_HEIGHT) as net:
        phases.append(measure_phase(net, "healthy", args.seconds))
        net[VICTIM].pause()
        phases.append(measure_phase(net, f"node{VICTIM} paused", args.seconds))
        net[VICTIM].resume()
        phases.append(measure_phase(net, f"node{VICTIM} resumed", args.seconds))
        net[VICTIM].kill()
        phases.append(measure_phase(net, f"node{VICTIM} killed", args.seconds))
        net.check_alive()
    print(f"{'phase':<16} {'blocks/s':>9} {'updates':>8} {'heights':>8} {'round>0':>8}")
    for phase in phases:
        print(
            f"{phase['phase']:<16} {phase['blocks_per_second']:>9} "
            f"{phase['model_updates']:>8} {phase['heights']:>8} {phase['after_round_0']:>8}"
        )
    healthy = float(phases[0]["blocks_per_second"])  # type: ignore[arg-type]
    paused = float(phases[1]["blocks_per_second"])  # type: ignore[arg-type]
    result = {
        "bench": "gray_failure",
        "seconds_per_phase": args.seconds,
        "phases": phases,
        "paused_rate_ratio": round(paused / healthy, 3) if healthy else None,
        "trains_while_paused": bool(phases[1]["model_updates"]),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
