"""``python -m tests.chaos``: a chaos run (``make chaos``); the summary as one JSON line last.

Exits 1 when an invariant was violated, 0 otherwise, also when this machine cannot run the bed
(it says why: it needs root, iproute2, iptables and, for clock skew, faketime).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from tests.chaos.faults import parse_kinds
from tests.chaos.run import ChaosSpec, ChaosUnavailable, run_chaos


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=180.0, help="how long faults go on")
    parser.add_argument("--seed", type=int, default=0, help="the schedule's seed")
    parser.add_argument("--kinds", default="all", help="fault kinds, comma-separated")
    parser.add_argument("--workdir", type=Path, help="keep homes and logs here")
    parser.add_argument("--json", type=Path, help="also write the summary to this file")
    args = parser.parse_args()
    try:
        kinds = tuple(parse_kinds(args.kinds))
    except ValueError as error:
        parser.error(str(error))
    spec = ChaosSpec(args.validators, args.seconds, args.seed, kinds, workdir=args.workdir)
    # SIGTERM unwinds like Ctrl-C, so that nodes, namespaces, rules and mounts are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        summary = run_chaos(spec, lambda line: print(line, flush=True))
    except ChaosUnavailable as reason:
        print(f"chaos: skipped: {reason}")
        return 0
    line = json.dumps(summary)
    if args.json is not None:
        args.json.write_text(line + "\n")
    for violation in summary["violations"]:
        print(f"VIOLATION: {violation}")
    print(line)
    return 1 if summary["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
