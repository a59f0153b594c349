"""A proposed model's spread to the validators over a slow network: the maker alone uploading a
copy to each, against weights spread in parts (node/weights/weights_parts.py), side by side.

Eight hosts, each a network namespace of the chaos bed (tests/chaos/network.py) with a 100 Mbit/s
link and a one-way delay: host 0 made a 20 MB model, hosts 1..7 are validators that must fetch it
to vote. Every host is a process running the node's own code for this path: a ``WeightsPool``
over a real LevelDB store, fetching with ``node.peers.Peer`` over real gRPC, and serving with
``PeerService.FetchWeights`` (whole weights, or stripes of parts as they arrive). All
validators start fetching at once, as they do when a proposal reaches them, over connections
already open, as the daemon's are (``--cold``: none open, so that every fetch also pays TCP's
and HTTP/2's handshakes, about 0.6 s at 100 ms); the figure is the
time until the last of them has checked weights (what a learning round waits for beyond its ML
work). Two models are spread one after the other, as in consecutive rounds; the table shows the
second (``first s``: the first, over connections that carried nothing yet, so TCP's slow start
costs more). The hosts keep TCP's congestion window between rounds, as docker-compose.yml's
validators do (``--slow-start-after-idle``: the kernel's default, which restarts slow start on a
connection idle for longer than its retransmission timeout). One transfer of 20 MB over
100 Mbit/s takes 1.7 s; the maker alone uploading seven copies, about 12 s.

Needs root (``make chaos`` installs what the network needs).

    .venv/bin/python bench/weights_spread.py [--size-mb 20] [--validators 8] [--delays 0,25,100]

Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PORT = 26656
RATE_MBIT = 100.0


class WeightsOnly:
    """Every message but a weights fetch is refused."""

    def __getattr__(self, name: str) -> Any:
        def refuse(*_: object) -> Any:
            raise ValueError("this bench node only serves weights")

        return refuse


class HashChecker:
    """Checks weights by their canonical hash against the model's layout (as a node does)."""

    def __init__(self, template: dict[str, Any], max_bytes: int) -> None:
        from learnchain.ml.weights_file import WeightsLayout

        self.layout = WeightsLayout.of_state(template)
        self.max_bytes = max_bytes

    async def verify(self, path: Path, weights_hash: bytes) -> bool:
        from learnchain.ml.weights_file import WeightsFile

        def check() -> bytes:
            return WeightsFile(path, self.layout, self.max_bytes).compute_hash()

        found = await asyncio.get_running_loop().run_in_executor(None, check)
        return bool(found == weights_hash)


async def run_host(args: argparse.Namespace) -> None:
    """One host: serve what it has; on "go" (a validator) fetch the model; print the time."""
    import grpc
    from weights_propagation import make_state

    from learnchain.consensus.types import Hash
    from learnchain.node.p2p.peers import MAX_MESSAGE_BYTES, Peer
    from learnchain.node.rpc.chain_reader import ChainReader, WeightsReader
    from learnchain.node.rpc.services import PeerService, add_services
    from learnchain.node.store.store import Store
    from learnchain.node.store.store_worker import StoreWorker
    from learnchain.node.weights.weights_parts import compute_spread_plan
    from learnchain.node.weights.weights_pool import WeightsPool

    template = make_state(args.size_mb)
    max_bytes = 2 * args.size_mb << 20
    io = StoreWorker(Store(args.db))
    endpoints: list[str] = args.endpoints.split(",")
    me = endpoints[args.index]
    sources = [Peer(e) for e in endpoints if e != me]
    pool = WeightsPool(io, HashChecker(template, max_bytes), lambda: sources, lambda: None, [], 2)
    weights = WeightsReader(io, lambda _: True, pool.find_parts)
    server = grpc.aio.server(options=[("grpc.max_send_message_length", MAX_MESSAGE_BYTES)])
    refuse: Any = WeightsOnly()
    no_chain = cast(ChainReader, refuse)
    peer = PeerService(refuse, refuse, refuse, refuse, no_chain, weights, lambda _: None)
    add_services(server, lambda _: None, peer=peer)
    server.add_insecure_port(me)
    await server.start()
    loop = asyncio.get_running_loop()
    print("ready", flush=True)
    if await loop.run_in_executor(None, sys.stdin.readline) == "connect\n":
        # A node holds a channel to every validator from its start: open each connection (a
        # fetch of weights nobody has) before the proposal, as the daemon's gossip has.
        for source in sources:
            await source.fetch_weights(bytes(32), max_bytes, Path(args.db).parent / "probe")
        print("connected", flush=True)
    maker = endpoints[0]
    plan = compute_spread_plan(endpoints, maker, me) if args.mode == "parts" else None
    while (command := await loop.run_in_executor(None, sys.stdin.readline)).startswith("go "):
        started = time.perf_counter()
        data = await pool.get(Hash(bytes.fromhex(command.split()[1])), maker, plan)
        seconds = time.perf_counter() - started
        print(json.dumps({"ok": data is not None, "seconds": seconds}), flush=True)
    await server.stop(None)


def measure(
    size_mb: int, validators: int, delay_ms: float, mode: str, warm: bool, keep_window: bool
) -> dict[str, object]:
    from processes import cpu_seconds
    from weights_propagation import make_state

    from learnchain.consensus.types import Hash
    from learnchain.ml.codec import compute_weights_hash, encode_weights
    from learnchain.node.store.store import Store
    from tests.chaos.network import ChaosNetwork, LinkShape

    first = make_state(size_mb)
    models = [first, {name: tensor + 1 for name, tensor in first.items()}]
    hashes = [compute_weights_hash(model) for model in models]
    size = len(encode_weights(first))
    with tempfile.TemporaryDirectory() as scratch, ChaosNetwork(validators) as net:
        net.heal(LinkShape(delay_ms=delay_ms, rate_mbit=RATE_MBIT))
        if keep_window:
            for i in range(validators):
                idle = "net.ipv4.tcp_slow_start_after_idle=0"
                subprocess.run([*net.launcher(i), "sysctl", "-qw", idle], check=True)
        with Store(Path(scratch) / "h0" / "chain.db") as store:
            for model, weights_hash in zip(models, hashes, strict=True):
                store.weights.put(Hash(weights_hash), encode_weights(model))
        endpoints = [f"{net.address(i)}:{PORT}" for i in range(validators)]
        hosts = [
            subprocess.Popen(
                [
                    *net.launcher(i),
                    *(sys.executable, __file__, "--host", str(i), "--mode", mode),
                    *("--endpoints", ",".join(endpoints)),
                    *("--size-mb", str(size_mb), "--db", str(Path(scratch) / f"h{i}" / "chain.db")),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
            for i in range(validators)
        ]
        try:
            for host in hosts:
                assert host.stdout is not None and host.stdout.readline().strip() == "ready"
            for host in hosts:
                assert host.stdin is not None
                host.stdin.write("connect\n" if warm else "cold\n")
                host.stdin.flush()
            for host in hosts if warm else []:
                assert host.stdout is not None and host.stdout.readline().strip() == "connected"
            rounds = []
            delayer = net.delayer_pid or 0
            delayer_before = cpu_seconds(delayer)
            cpu_before = sum(cpu_seconds(h.pid) for h in hosts) + delayer_before
            for weights_hash in hashes:
                for host in hosts[1:]:
                    assert host.stdin is not None
                    host.stdin.write(f"go {weights_hash.hex()}\n")
                    host.stdin.flush()
                rounds.append([json.loads(h.stdout.readline()) for h in hosts[1:] if h.stdout])
            delayer_after = cpu_seconds(delayer)
            cpu_after = sum(cpu_seconds(h.pid) for h in hosts) + delayer_after
            cpu_per_round = (cpu_after - cpu_before) / len(hashes)
            delayer_per_round = (delayer_after - delayer_before) / len(hashes)
        finally:
            for host in hosts:
                if host.stdin is not None:
                    host.stdin.close()
            for host in hosts:
                host.wait(timeout=30)
    first_round, second_round = ([r["seconds"] for r in results] for results in rounds)
    return {
        "mode": mode,
        "size_mb": round(size / (1 << 20), 1),
        "validators": validators,
        "one_way_delay_ms": delay_ms,
        "rate_mbit": RATE_MBIT,
        "connections": "open" if warm else "cold",
        "slow_start_after_idle": not keep_window,
        "all_fetched": all(r["ok"] for results in rounds for r in results),
        "spread_seconds": round(max(second_round), 2),
        "median_seconds": round(statistics.median(second_round), 2),
        "first_spread_seconds": round(max(first_round), 2),
        "one_transfer_seconds": round(size * 8 / (RATE_MBIT * 1e6), 2),
        # every host's (and the packet delayer's) CPU time per spread over this machine's cores:
        # a floor on the spread here (with a machine per validator, one host's share)
        "cpu_floor_seconds": round(cpu_per_round / (os.cpu_count() or 1), 2),
        # the bed's own share of that floor: the user-space packet delayer (tests/chaos/delay.py)
        # holding every packet and ACK, which a kernel with sch_netem does for next to nothing
        "delayer_cpu_seconds": round(delayer_per_round, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=20)
    parser.add_argument("--validators", type=int, default=8)
    parser.add_argument("--delays", default="0,25,100")
    parser.add_argument("--modes", default="maker,parts")
    parser.add_argument(
        "--cold",
        action="store_true",
        help="start with no connection open (the daemon keeps one to every validator)",
    )
    parser.add_argument(
        "--slow-start-after-idle",
        action="store_true",
        help="hosts restart TCP's slow start on a connection idle between rounds (the kernel's "
        "default; docker/docker-compose.yml sets net.ipv4.tcp_slow_start_after_idle=0)",
    )
    parser.add_argument("--host", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="parts", help=argparse.SUPPRESS)
    parser.add_argument("--endpoints", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.host is not None:
        args.index = args.host
        asyncio.run(run_host(args))
        return
    from tests.chaos.network import find_missing

    missing = find_missing()
    if missing is not None:
        sys.exit(f"weights_spread: {missing}")
    rows = [
        measure(
            args.size_mb,
            args.validators,
            float(d),
            mode,
            not args.cold,
            not args.slow_start_after_idle,
        )
        for d in args.delays.split(",")
        for mode in args.modes.split(",")
    ]
    print(
        f"{'mode':>6} {'MB':>5} {'validators':>10} {'delay ms':>9} {'spread s':>9} {'median s':>9}"
    )
    for r in rows:
        print(
            f"{r['mode']:>6} {r['size_mb']:>5} {r['validators']:>10} {r['one_way_delay_ms']:>9} "
            f"{r['spread_seconds']:>9} {r['median_seconds']:>9}"
        )
    print(json.dumps({"bench": "weights_spread", "runs": rows}))


if __name__ == "__main__":
    main()
