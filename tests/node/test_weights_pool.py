"""The weights pool serves weights by hash from wherever they are (store, arriving, a peer),
keeps only weights whose hash checks, and prunes all but the retained models and work in use."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace
from pathlib import Path

from consensus.state import ChainState
from consensus.types import Hash, Height
from ml.codec import WeightsBytes
from node.learning import EncodedWeights
from node.store import Store
from node.store_worker import StoreWorker
from node.weights_pool import PRUNE_EVERY, WeightsPool, compute_fetch_order
from tests.consensus.chain import make_genesis_state, make_keys


def digest(data: bytes) -> Hash:
    return Hash(hashlib.sha256(data).digest())


class HashChecker:
    """Stands in for the learning worker: weights 'fit' when their SHA-256 is the hash."""

    max_bytes = 1 << 20

    def __init__(self) -> None:
        self.checked = 0

    async def verify(self, data: WeightsBytes, weights_hash: Hash) -> bool:
        self.checked += 1
        return digest(bytes(data)) == weights_hash


class Source:
    """A peer that serves what it holds (or lies)."""

    def __init__(self, address: str, held: dict[Hash, bytes], connected: bool = True) -> None:
        self.address = address
        self.held = held
        self.connected = connected
        self.asked: list[str] = []

    async def fetch_weights(self, weights_hash: bytes, max_bytes: int) -> bytearray | None:
        self.asked.append(self.address)
        data = self.held.get(Hash(weights_hash))
        return None if data is None else bytearray(data)


def make_pool(
    tmp_path: Path, sources: list[Source], rejected: list[int]
) -> tuple[WeightsPool, StoreWorker]:
    io = StoreWorker(Store(tmp_path / "chain.db"))
    pool = WeightsPool(
        io, HashChecker(), lambda: sources, lambda: rejected.append(1), [digest(b"m0")], 2
    )
    return pool, io


def test_weights_come_from_the_preferred_peer_first_and_are_kept(tmp_path: Path) -> None:
    data = b"weights"
    a, b = Source("a:1", {digest(data): data}), Source("b:1", {digest(data): data})

    async def scenario() -> None:
        pool, io = make_pool(tmp_path, [a, b], [])
        assert await pool.get(digest(data), preferred="b:1") == data
        assert b.asked == ["b:1"] and a.asked == []
        assert pool.has(digest(data))
        assert await pool.get(digest(data)) == data  # now from here, no peer asked again
        assert b.asked == ["b:1"]
        pool.close()
        io.close()

    asyncio.run(scenario())


def test_weights_whose_hash_does_not_check_are_counted_and_the_next_peer_is_tried(
    tmp_path: Path,
) -> None:
    data = b"weights"
    liar = Source("liar:1", {digest(data): b"poison"})
    honest = Source("honest:1", {digest(data): data})
    rejected: list[int] = []

    async def scenario() -> WeightsBytes | None:
        pool, io = make_pool(tmp_path, [liar, honest], rejected)
        got = await pool.get(digest(data), preferred="liar:1")
        pool.close()
        io.close()
        return got

    assert asyncio.run(scenario()) == data
    assert rejected == [1]


def test_weights_no_peer_has_are_none(tmp_path: Path) -> None:
    async def scenario() -> WeightsBytes | None:
        pool, io = make_pool(tmp_path, [Source("a:1", {})], [])
        got = await pool.get(digest(b"nowhere"))
        pool.close()
        io.close()
        return got

    assert asyncio.run(scenario()) is None


def test_offered_weights_are_kept_once_checked_and_bad_ones_are_not(tmp_path: Path) -> None:
    rejected: list[int] = []

    async def scenario() -> tuple[bool, bool]:
        pool, io = make_pool(tmp_path, [], rejected)
        pool.offer(digest(b"good"), b"good")
        pool.offer(digest(b"bad"), b"not bad")
        assert await pool.get(digest(b"good")) == b"good"
        await asyncio.sleep(0.05)
        result = (pool.has(digest(b"good")), pool.has(digest(b"bad")))
        pool.close()
        io.close()
        return result

    assert asyncio.run(scenario()) == (True, False)
    assert rejected == [1]


def test_pruning_keeps_the_retained_models_and_the_weights_in_use(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, list[bool]]:
        pool, io = make_pool(tmp_path, [], [])
        names = [b"m0", b"m1", b"m2", b"contribution", b"old"]
        for name in names:
            await pool.store(EncodedWeights(digest(name), name))
        state = make_genesis_state(make_keys(1))
        for name in (b"m1", b"m2"):
            pool.on_commit(committed_with(state, digest(name), 1), set)
        pruned = await pool.prune({digest(b"contribution")})
        kept = [io.store.weights.has(digest(name)) for name in names]
        pool.close()
        io.close()
        return pruned, kept

    pruned, kept = asyncio.run(scenario())
    # retain_models is 2: m0 fell out when m2 was committed
    assert kept == [False, True, True, True, False]
    assert pruned == 2


def committed_with(state: ChainState, model_hash: Hash, height: int) -> ChainState:
    assert height % PRUNE_EVERY != 0  # no background prune in the middle of the test
    return replace(state, model_hash=model_hash, height=Height(height))


def test_the_maker_is_asked_first_and_peers_that_do_not_answer_last() -> None:
    sources = [Source(f"p{i}", {}, connected=i % 2 == 0) for i in range(6)]
    for _ in range(20):
        order = [s.address for s in compute_fetch_order(sources, preferred="p3")]
        assert order[0] == "p3"
        assert set(order[1:4]) == {"p0", "p2", "p4"}
        assert set(order[4:]) == {"p1", "p5"}
