"""Simulator throughput with real Ed25519 signatures, for 4, 16 and 64 validators.

Targets (issue #2): >= 200 heights/s at 4 validators, >= 5 heights/s at 64.
Prints a table and, last, one JSON line.

    .venv/bin/python bench/simulator_speed.py [--heights-4 N] [--heights-16 N] [--heights-64 N]
"""

from __future__ import annotations

import argparse
import json
import platform

from learnchain.consensus.simulation import SimulationConfig, run_simulation

TARGETS = {4: 200.0, 64: 5.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--heights-4", type=int, default=2000)
    parser.add_argument("--heights-16", type=int, default=300)
    parser.add_argument("--heights-64", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    runs = {4: args.heights_4, 16: args.heights_16, 64: args.heights_64}
    rows = []
    print(
        f"{'validators':>10} {'heights':>8} {'wall s':>8} {'heights/s':>10} {'target':>8} "
        f"{'verifies/height':>16} {'checks/height':>14}"
    )
    for validators, heights in runs.items():
        result = run_simulation(
            SimulationConfig(validators=validators, heights=heights, seed=args.seed)
        )
        data = result.as_dict()
        row = {
            "validators": validators,
            "heights": result.heights,
            "wall_seconds": round(result.wall_seconds, 3),
            "heights_per_second": data["heights_per_second"],
            "target_heights_per_second": TARGETS.get(validators),
            "signature_verifications_per_height": data["signature_verifications_per_height"],
            "signature_checks_per_height": data["signature_checks_per_height"],
            "forks": result.forks,
        }
        rows.append(row)
        print(
            f"{validators:>10} {result.heights:>8} {result.wall_seconds:>8.2f} "
            f"{row['heights_per_second']:>10} {row['target_heights_per_second'] or '-':>8} "
            f"{row['signature_verifications_per_height']:>16} "
            f"{row['signature_checks_per_height']:>14}"
        )
    print(
        json.dumps({"bench": "simulator_speed", "python": platform.python_version(), "runs": rows})
    )


if __name__ == "__main__":
    main()
