"""Catch-up speed: a fresh node syncs a long chain from a peer, verifying every commit.

Target (issue #4): a fresh node syncs 10,000 blocks at >= 2,000 blocks/s with commits verified.

The chain is built in this process from a real ``learnchain testnet`` genesis and the four
validators' keys: every block is made by ``consensus.state.build_block`` and committed by
precommits that all four validators sign. It is written into node0's LevelDB store. Then node0
(the source; with a quarter of the stake it cannot commit on its own) and node1 (a fresh database)
run as real ``learnchain start`` processes; node1 hears node0 at height N+1, asks it for blocks
with ``GetBlocks`` and checks each block's commit signatures and state transition before it
writes the block. The rate is measured over node1's progress as seen through its Query service.

    .venv/bin/python bench/catch_up.py [--blocks 10000]

Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from processes import FASTEST_PACE, cpu_seconds

from learnchain.consensus.crypto import PrivateKey, SignatureVerifier
from learnchain.consensus.messages import Commit, CommitSig, Vote
from learnchain.consensus.state import ChainState, build_block, compute_genesis_state
from learnchain.consensus.types import Height, Round, Signature, VoteType
from learnchain.consensus.validators import compute_proposer_of_round
from learnchain.node.home.files import read_genesis, read_key
from learnchain.node.localnet.cluster import LocalCluster
from learnchain.node.store.store import Store


def write_chain(store: Store, state: ChainState, keys: list[PrivateKey], blocks: int) -> None:
    """``blocks`` empty blocks on top of ``state``, each with a commit signed by every key."""
    verifier = SignatureVerifier()
    last_commit: Commit | None = None
    for height in range(1, blocks + 1):
        proposer = compute_proposer_of_round(state.validators, Round(0))
        block, next_state = build_block(
            state, proposer, [], (), last_commit, state.model_hash, (), verifier
        )
        signatures = tuple(
            CommitSig(
                key.address,
                Signature(
                    key.sign(
                        Vote(
                            state.chain_id,
                            VoteType.PRECOMMIT,
                            Height(height),
                            Round(0),
                            block.hash,
                            key.address,
                        ).sign_bytes()
                    )
                ),
            )
            for key in keys
        )
        last_commit = Commit(Height(height), Round(0), block.hash, signatures)
        store.save_block(block, last_commit, next_state)
        state = next_state


def measure(blocks: int) -> dict[str, object]:
    with (
        tempfile.TemporaryDirectory() as scratch,
        LocalCluster(Path(scratch) / "net", 4, *FASTEST_PACE) as net,
    ):
        net.configure_all("train", "false")
        genesis = compute_genesis_state(read_genesis(net[0].home).genesis)
        keys = [read_key(net[i].home) for i in range(4)]
        built = time.perf_counter()
        with Store(net[0].home / "data" / "chain.db") as store:
            write_chain(store, genesis, keys, blocks)
        build_seconds = time.perf_counter() - built
        net[0].start()
        net[1].start()
        deadline = time.monotonic() + 600
        while net[1].height() < 1:
            net.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError("node1 did not start syncing")
            time.sleep(0.01)
        first_height, first = net[1].height(), time.perf_counter()
        cpu_before = [cpu_seconds(net[i].pid) for i in (0, 1)]
        while (h := net[1].height()) < blocks:
            if time.monotonic() > deadline:
                raise RuntimeError(f"node1 stopped syncing at height {h}")
            time.sleep(0.05)
        elapsed = time.perf_counter() - first
        cpu = [cpu_seconds(net[i].pid) - b for i, b in zip((0, 1), cpu_before, strict=True)]
    synced = blocks - first_height
    return {
        "blocks": blocks,
        "synced_measured": synced,
        "seconds": round(elapsed, 2),
        "blocks_per_second": round(synced / elapsed, 1),
        "syncing_cpu_ms_per_block": round(cpu[1] * 1000 / synced, 3),
        "serving_cpu_ms_per_block": round(cpu[0] * 1000 / synced, 3),
        "chain_build_seconds": round(build_seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--blocks", type=int, default=10_000)
    args = parser.parse_args()
    row = measure(args.blocks)
    print(f"{'blocks':>7} {'seconds':>8} {'blocks/s':>9} {'target':>7} {'CPU ms/block':>22}")
    cpu = f"{row['syncing_cpu_ms_per_block']} sync + {row['serving_cpu_ms_per_block']} serve"
    print(
        f"{row['blocks']:>7} {row['seconds']:>8} {row['blocks_per_second']:>9} {'>= 2000':>7} "
        f"{cpu:>22}"
    )
    print(json.dumps({"bench": "catch_up", **row}))


if __name__ == "__main__":
    main()
