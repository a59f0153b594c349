"""Floods against a running testnet (issue #16): memory and commit rate of the validator that
takes them, before, during and after 1,000 bogus Hellos and 10,000 spam transactions, and how
many blocks an honest transaction sent during the spam waits.

``learnchain testnet --validators 4`` with its defaults and the plateau rule off. Phases of
``--seconds`` each against node0: quiet; a Hello flood (signed Hellos from fresh keys naming
dead endpoints, and unsigned ones, as fast as one client sends them); quiet; a transaction spam
(signed transfers from 400 keys with no balance, 25 each, as the probe that found the defect
sent them) with one honest transfer from a funded validator key in the middle; quiet. Each
phase reports node0's heights per second and its largest resident memory, beside node1's (not
flooded: the memory a validator gains anyway as it trains).

Before issue #16 the Hello flood filled node0's peer table for good (each dead peer then held
up to 65 MB of queued gossip) and the spam filled its mempool, so that honest transactions
were refused 25 minutes later.

    .venv/bin/python bench/flood.py [--seconds 20] [--hellos 1000] [--txs 10000]

Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
from processes import rss_mb, training_testnet

from learnchain.consensus.crypto import PrivateKey
from learnchain.consensus.messages import SignedTx, Tx, TxKind
from learnchain.consensus.types import ChainId, Nonce, Signature, Tokens
from learnchain.node.home.files import read_key
from learnchain.node.home.testnet import find_free_base_port
from learnchain.node.localnet.cluster import LocalCluster, send_hellos
from learnchain.node.p2p.peer_auth import make_hello
from learnchain.proto import learnchain_pb2 as pb
from learnchain.proto import learnchain_pb2_grpc as pb_grpc
from learnchain.proto.wire import tx_to_proto

VALIDATORS = 4
SPAM_KEYS = 400


class Phase:
    """Samples node0's height and memory while a phase runs."""

    def __init__(self, net: LocalCluster, name: str) -> None:
        self.net, self.name = net, name
        self.start_height = net[0].height()
        self.started = time.monotonic()
        self.max_rss = rss_mb(net[0].pid)
        self.control_rss = rss_mb(net[1].pid)

    def sample(self) -> None:
        self.max_rss = max(self.max_rss, rss_mb(self.net[0].pid))
        self.control_rss = max(self.control_rss, rss_mb(self.net[1].pid))

    def hold(self, seconds: float) -> None:
        """Keep sampling until ``seconds`` have passed since the phase began."""
        while time.monotonic() - self.started < seconds:
            self.sample()
            time.sleep(0.5)

    def result(self, **extra: Any) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        return {
            "phase": self.name,
            "blocks_per_second": round((self.net[0].height() - self.start_height) / elapsed, 3),
            "max_rss_mb": round(self.max_rss, 1),
            "control_max_rss_mb": round(self.control_rss, 1),  # node1, not flooded
            "seconds": round(elapsed, 1),
            **extra,
        }


def make_flood(chain_id: ChainId, count: int, phase: Phase) -> Iterator[pb.HelloRequest]:
    """``count`` signed Hellos naming dead endpoints, each followed by an unsigned one; node0's
    memory sampled now and then."""
    dead = find_free_base_port(1, start=47000, step=11)
    for i in range(count):
        endpoint = f"127.0.0.{1 + i % 200}:{dead}"
        yield make_hello(PrivateKey.generate(), chain_id, endpoint)
        yield pb.HelloRequest(chain_id=chain_id, node_id=bytes(20), endpoint=endpoint)
        if i % 50 == 0:
            phase.sample()


def sign_transfer(key: PrivateKey, chain_id: ChainId, nonce: int, to: PrivateKey) -> SignedTx:
    tx = Tx(chain_id, TxKind.TRANSFER, key.public_key, Nonce(nonce), Tokens(1), to.address)
    return SignedTx(tx, Signature(key.sign(tx.sign_bytes())))


def spam_txs(
    net: LocalCluster, chain_id: ChainId, count: int, phase: Phase
) -> tuple[dict[str, int], int | None]:
    """``count`` transfers from keys with no balance, and one honest transfer halfway; answers
    by code, and the blocks the honest one waited (None: not committed in 60 s)."""
    keys = [PrivateKey.generate() for _ in range(SPAM_KEYS)]
    honest_key = read_key(net[1].home)
    waited: list[int | None] = [None]

    def send_honest() -> None:
        with grpc.insecure_channel(net[0].address) as channel:
            query = pb_grpc.QueryStub(channel)
            nonce = query.GetAccount(pb.AccountRequest(address=honest_key.address)).account.nonce
            signed = sign_transfer(honest_key, chain_id, nonce, keys[0])
            sent_at = net[0].height()
            pb_grpc.PeerStub(channel).SubmitTx(tx_to_proto(signed), timeout=10)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                account = query.GetAccount(pb.AccountRequest(address=honest_key.address)).account
                if account.nonce > nonce:
                    waited[0] = net[0].height() - sent_at
                    return
                time.sleep(0.2)

    codes: dict[str, int] = {}
    honest = threading.Thread(target=send_honest)
    with grpc.insecure_channel(net[0].address) as channel:
        peer = pb_grpc.PeerStub(channel)
        for i in range(count):
            key = keys[i % SPAM_KEYS]
            signed = sign_transfer(key, chain_id, i // SPAM_KEYS, keys[(i + 1) % SPAM_KEYS])
            try:
                peer.SubmitTx(tx_to_proto(signed), timeout=10)
                code = "OK"
            except grpc.RpcError as error:
                code = error.code().name
            codes[code] = codes.get(code, 0) + 1
            if i == count // 2:
                honest.start()
            if i % 200 == 0:
                phase.sample()
    honest.join()
    return codes, waited[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--hellos", type=int, default=1000)
    parser.add_argument("--txs", type=int, default=10_000)
    args = parser.parse_args()
    phases = []
    with training_testnet(VALIDATORS, warm_up_height=3) as net:
        status = net[0].status()
        assert status is not None
        chain_id = ChainId(status.chain_id)

        phase = Phase(net, "quiet")
        phase.hold(args.seconds)
        phases.append(phase.result())

        phase = Phase(net, "hello flood")
        codes = send_hellos(net[0].address, make_flood(chain_id, args.hellos, phase))
        phase.hold(args.seconds)
        peers = net[0].status()
        phases.append(phase.result(answers=codes, peers_after=peers.peers if peers else None))

        phase = Phase(net, "after hellos")
        phase.hold(args.seconds)
        phases.append(phase.result())

        phase = Phase(net, "tx spam")
        codes, waited = spam_txs(net, chain_id, args.txs, phase)
        phase.hold(args.seconds)
        phases.append(phase.result(answers=codes, honest_tx_blocks=waited))

        phase = Phase(net, "after spam")
        phase.hold(args.seconds)
        phases.append(phase.result())
        net.check_alive()
    print(f"{'phase':<14} {'blocks/s':>9} {'max RSS MB':>11} {'node1 MB':>9} {'s':>6}  answers")
    for row in phases:
        print(
            f"{row['phase']:<14} {row['blocks_per_second']:>9} {row['max_rss_mb']:>11} "
            f"{row['control_max_rss_mb']:>9} {row['seconds']:>6}  {row.get('answers', '')}"
        )
    spam = phases[3]
    print(f"honest transfer during the spam committed after {spam['honest_tx_blocks']} blocks")
    print(json.dumps({"bench": "flood", "phases": phases}))


if __name__ == "__main__":
    main()
