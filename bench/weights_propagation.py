"""Weights propagation: one node serves 100 MB of weights, four fetch them at once.

Targets (issue #4): >= 300 MB/s in aggregate to 4 validators; peak RSS per node <= 3x the model.

Every process runs the node's own code for this path, over real gRPC on loopback and real
LevelDB: the source serves ``Peer.FetchWeights`` (``node.services.PeerService``) from a
``node.store.Store`` holding the weights as 1 MiB content-addressed chunks; each receiver
fetches with ``node.peers.Peer.fetch_weights``, checks the weights against the model and their
canonical hash (``ml.codec.compute_encoded_weights_hash``, what ``LearningWorker.verify``
runs), and stores them (``WeightsStore.put``), as ``WeightsPool.get`` does. The node uses
checked weights at once (to score and vote) while their write goes on in the background, so the
rate is measured to the moment every receiver has checked weights; the time until they are also
stored is reported beside it. The daemon around them is left out: its memory is the same with or
without a fetch. Peak RSS is the kernel's high-water mark (VmHWM);
"above baseline" subtracts the receiver's RSS just before fetching (Python, torch, gRPC).

    .venv/bin/python bench/weights_propagation.py [--size-mb 100] [--receivers 4]

Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import torch

from learnchain.consensus.types import Hash

ROOT = Path(__file__).resolve().parents[1]
TENSOR_ELEMENTS = 1 << 20  # 4 MiB float32 tensors


def memory_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def make_state(size_mb: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    count = max(1, size_mb * (1 << 20) // (TENSOR_ELEMENTS * 4))
    return {
        f"layer{i:03d}.weight": torch.randn(TENSOR_ELEMENTS, generator=generator)
        for i in range(count)
    }


class WeightsOnly:
    """The bench's node serves weights and nothing else: every other message is refused."""

    def __getattr__(self, name: str) -> Any:
        def refuse(*_: object) -> Any:
            raise ValueError("this bench node only serves weights")

        return refuse


async def serve(db: str, port: int) -> None:
    import grpc

    from learnchain.node.p2p.peers import MAX_MESSAGE_BYTES
    from learnchain.node.rpc.chain_reader import ChainReader, WeightsReader
    from learnchain.node.rpc.services import PeerService, add_services
    from learnchain.node.store.store import Store
    from learnchain.node.store.store_worker import StoreWorker

    weights = WeightsReader(StoreWorker(Store(db)), lambda _: True)
    server = grpc.aio.server(options=[("grpc.max_send_message_length", MAX_MESSAGE_BYTES)])
    refuse: Any = WeightsOnly()
    no_chain = cast(ChainReader, refuse)  # GetBlocks is never called here
    peer = PeerService(refuse, refuse, refuse, refuse, no_chain, weights, lambda _: None)
    add_services(server, lambda _: None, peer=peer)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


async def fetch(address: str, weights_hash: bytes, size_mb: int, db: str) -> dict[str, float]:
    from learnchain.ml.weights_file import WeightsFile, WeightsLayout
    from learnchain.node.p2p.peers import Peer
    from learnchain.node.store.store import Store

    template = make_state(size_mb)  # the task's model: names, shapes and dtypes to check against
    layout = WeightsLayout.of_state(template)
    store = Store(db)
    baseline = memory_mb("VmRSS") - sum(t.numel() * 4 for t in template.values()) / (1 << 20)
    started = time.perf_counter()
    partial = store.weights.new_partial()
    got = await Peer(address).fetch_weights(weights_hash, 2 * size_mb << 20, partial)
    assert got, "the source did not send the weights"
    received = time.perf_counter()
    after_transfer = memory_mb("VmHWM")
    ok = WeightsFile(partial, layout, 2 * size_mb << 20).compute_hash() == weights_hash
    assert ok, "the weights do not match their hash"
    checked = time.perf_counter()
    store.weights.adopt(partial, Hash(weights_hash))
    done = time.perf_counter()
    return {
        "seconds": checked - started,
        "stored_seconds": done - started,
        "transfer_seconds": received - started,
        "check_seconds": checked - received,
        "store_seconds": done - checked,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": memory_mb("VmHWM"),
        "peak_rss_after_transfer_mb": after_transfer,
    }


def measure(size_mb: int, receivers: int) -> dict[str, object]:
    from learnchain.ml.codec import compute_weights_hash, encode_weights
    from learnchain.node.home.testnet import find_free_base_port
    from learnchain.node.store.store import Store

    state = make_state(size_mb)
    weights_hash = compute_weights_hash(state)
    data = encode_weights(state)
    del state
    with tempfile.TemporaryDirectory() as scratch:
        with Store(Path(scratch) / "source" / "chain.db") as store:
            store.weights.put(Hash(weights_hash), data)
        size = len(data)
        del data
        port = find_free_base_port(1, start=43000)
        me = [sys.executable, __file__]
        source = subprocess.Popen(
            [*me, "--serve", str(Path(scratch) / "source" / "chain.db"), "--port", str(port)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        try:
            assert source.stdout is not None and source.stdout.readline().strip() == "ready"
            started = time.perf_counter()
            fetchers = [
                subprocess.Popen(
                    [
                        *(*me, "--fetch", f"127.0.0.1:{port}", "--hash", weights_hash.hex()),
                        *(
                            "--size-mb",
                            str(size_mb),
                            "--db",
                            str(Path(scratch) / f"r{i}" / "chain.db"),
                        ),
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=ROOT,
                )
                for i in range(receivers)
            ]
            results = []
            for fetcher in fetchers:
                out, _ = fetcher.communicate(timeout=600)
                assert fetcher.returncode == 0, out
                results.append(json.loads(out.strip().splitlines()[-1]))
            wall = time.perf_counter() - started
            source_rss = memory_of(source.pid, "VmHWM")
        finally:
            source.terminate()
            source.wait(timeout=20)
    total_mb = receivers * size / (1 << 20)
    return {
        "size_mb": round(size / (1 << 20), 1),
        "receivers": receivers,
        "aggregate_mb_per_s": round(total_mb / max(r["seconds"] for r in results), 1),
        "aggregate_stored_mb_per_s": round(total_mb / max(r["stored_seconds"] for r in results), 1),
        "per_receiver_seconds": [round(r["seconds"], 2) for r in results],
        "transfer_seconds": [round(r["transfer_seconds"], 2) for r in results],
        "check_seconds": [round(r["check_seconds"], 2) for r in results],
        "store_seconds": [round(r["store_seconds"], 2) for r in results],
        "wall_seconds_incl_process_start": round(wall, 2),
        "receiver_peak_rss_mb": round(max(r["peak_rss_mb"] for r in results), 1),
        "receiver_peak_above_baseline_mb": round(
            max(r["peak_rss_mb"] - r["baseline_rss_mb"] for r in results), 1
        ),
        "receiver_peak_above_baseline_after_transfer_mb": round(
            max(r["peak_rss_after_transfer_mb"] - r["baseline_rss_mb"] for r in results), 1
        ),
        "source_peak_rss_mb": round(source_rss, 1),
    }


def memory_of(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--receivers", type=int, default=4)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--fetch", help=argparse.SUPPRESS)
    parser.add_argument("--hash", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.port))
        return
    if args.fetch:
        result = asyncio.run(fetch(args.fetch, bytes.fromhex(args.hash), args.size_mb, args.db))
        print(json.dumps(result))
        return
    row = measure(args.size_mb, args.receivers)
    print(
        f"{'MB':>6} {'receivers':>9} {'MB/s':>7} {'stored MB/s':>11} {'peak RSS':>9} "
        f"{'above base':>10} {'source':>7}"
    )
    print(
        f"{row['size_mb']:>6} {row['receivers']:>9} {row['aggregate_mb_per_s']:>7} "
        f"{row['aggregate_stored_mb_per_s']:>11} "
        f"{row['receiver_peak_rss_mb']:>9} {row['receiver_peak_above_baseline_mb']:>10} "
        f"{row['source_peak_rss_mb']:>7}"
    )
    print(json.dumps({"bench": "weights_propagation", **row}))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
