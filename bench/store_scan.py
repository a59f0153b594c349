"""What the start-up integrity check costs (issue #16): every stored block, commit and index
entry read with LevelDB's checksums on, against opening the database alone.

Writes ``--heights`` committed blocks of a four-validator chain into a fresh store (the real
``Store.save_block`` path, one synced batch each, as bench/catch_up.py writes them), then times
opening it with and without the check, best of ``--repeat``.

    .venv/bin/python bench/store_scan.py [--heights 10000] [--repeat 3]

Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from catch_up import write_chain

from learnchain.consensus.state import compute_genesis_state
from learnchain.node.home.files import read_genesis, read_key
from learnchain.node.localnet.cluster import LocalCluster
from learnchain.node.store.store import Store


def time_open(path: Path, check: bool, repeat: int) -> float:
    """The best time to open (and close) the store, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        Store(path, check=check).close()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heights", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        net = LocalCluster(Path(scratch) / "net", 4)  # homes only: genesis and keys
        genesis = compute_genesis_state(read_genesis(net[0].home).genesis)
        keys = [read_key(net[i].home) for i in range(4)]
        path = Path(scratch) / "chain.db"
        with Store(path) as store:
            write_chain(store, genesis, keys, args.heights)
        Store(path, check=False).close()  # the write-ahead log becomes a table file once
        size = sum(p.stat().st_size for p in path.iterdir())
        checked = time_open(path, True, args.repeat)
        unchecked = time_open(path, False, args.repeat)
    print(f"{'heights':>8} {'store MB':>9} {'open ms':>8} {'open+check ms':>14}")
    print(f"{args.heights:>8} {size / 1e6:>9.1f} {unchecked * 1e3:>8.1f} {checked * 1e3:>14.1f}")
    result = {
        "bench": "store_scan",
        "heights": args.heights,
        "store_mb": round(size / 1e6, 1),
        "open_ms": round(unchecked * 1e3, 1),
        "open_and_check_ms": round(checked * 1e3, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
