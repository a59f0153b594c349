"""The weights pool serves weights by hash from wherever they are (store, arriving, a peer) as
files in the node's weights store, keeps only weights whose hash checks (a bad file is deleted),
and prunes all but the retained models and work in use."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from learnchain.consensus.state import ChainState
from learnchain.consensus.types import Hash, Height
from learnchain.node.p2p.peers import OversizedWeights
from learnchain.node.store.fresh_writes import FreshWrites
from learnchain.node.store.store import Store
from learnchain.node.store.store_worker import StoreWorker
from learnchain.node.weights.weights_parts import (
    PART_BYTES,
    PART_WAIT_SECONDS,
    PartialWeights,
    compute_spread_plan,
    iter_stripe,
)
from learnchain.node.weights.weights_pool import PRUNE_EVERY, WeightsPool, compute_fetch_order
from learnchain.node.weights.weights_problems import WeightsProblems
from tests.consensus.chain import make_genesis_state, make_keys


def digest(data: bytes) -> Hash:
    return Hash(hashlib.sha256(data).digest())


class HashChecker:
    """Stands in for the learning worker: weights 'fit' when their SHA-256 is the hash."""

    max_bytes = 16 << 20

    def __init__(self) -> None:
        self.checked = 0

    async def verify(self, path: Path, weights_hash: Hash) -> bool:
        self.checked += 1
        return digest(path.read_bytes()) == weights_hash


class Source:
    """A peer that serves what it holds (or lies), or what its own pool has (then it serves
    weights in parts while that pool is still fetching them)."""

    def __init__(
        self,
        address: str,
        held: dict[Hash, bytes],
        connected: bool = True,
        pool: WeightsPool | None = None,
    ) -> None:
        self.address = address
        self.held = held
        self.connected = connected
        self.pool = pool
        self.asked: list[str] = []
        self.parts_served = 0
        self.folder = Path(tempfile.mkdtemp(prefix="source-"))

    async def fetch_weights(self, weights_hash: bytes, max_bytes: int, into: Path) -> bool:
        self.asked.append(self.address)
        data = self.held.get(Hash(weights_hash))
        if data is None:
            return False
        into.write_bytes(data)
        return True

    async def stream_parts(
        self, weights_hash: bytes, stripe: int, stripes: int, max_bytes: int
    ) -> AsyncIterator[tuple[int, int, bytes]]:
        self.asked.append(f"{self.address} {stripe}/{stripes}")
        if self.pool is not None:
            partial = await self.pool.find_parts(Hash(weights_hash), PART_WAIT_SECONDS)
        else:
            data = self.held.get(Hash(weights_hash))
            partial = None
            if data is not None:
                path = self.folder / f"{self.address.replace(':', '_')}.held"
                path.write_bytes(data)
                partial = PartialWeights(len(data), path, complete=True)
        if partial is None:
            return
        async for part, data in iter_stripe(partial, stripe, stripes):
            self.parts_served += 1
            yield part, partial.size, data


def read(path: Path | None) -> bytes | None:
    """The bytes of a file the pool handed out."""
    return None if path is None else path.read_bytes()


def make_pool(
    tmp_path: Path, sources: list[Source], rejected: list[int], name: str = "chain.db"
) -> tuple[WeightsPool, StoreWorker]:
    io = StoreWorker(Store(tmp_path / name))
    pool = WeightsPool(
        io, HashChecker(), lambda: sources, lambda: rejected.append(1), [digest(b"m0")], 2
    )
    return pool, io


def test_weights_come_from_the_preferred_peer_first_and_are_kept(tmp_path: Path) -> None:
    data = b"weights"
    a, b = Source("a:1", {digest(data): data}), Source("b:1", {digest(data): data})

    async def scenario() -> None:
        pool, io = make_pool(tmp_path, [a, b], [])
        assert read(await pool.get(digest(data), preferred="b:1")) == data
        assert b.asked == ["b:1"] and a.asked == []
        assert pool.has(digest(data))
        assert read(await pool.get(digest(data))) == data  # now from here, no peer asked again
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

    async def scenario() -> bytes | None:
        pool, io = make_pool(tmp_path, [liar, honest], rejected)
        got = read(await pool.get(digest(data), preferred="liar:1"))
        pool.close()
        io.close()
        return got

    assert asyncio.run(scenario()) == data
    assert rejected == [1]
    assert not list((tmp_path / "weights" / "partial").iterdir()), "the liar's file is gone"


def test_weights_no_peer_has_are_none(tmp_path: Path) -> None:
    async def scenario() -> Path | None:
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
        assert read(await pool.get(digest(b"good"))) == b"good"
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
            io.store.weights.put(digest(name), name)
        state = make_genesis_state(make_keys(1))
        pruned = 0
        # at m1's commit m2 is the next height's proposal, in use with a contribution to it
        for name, in_use in ((b"m1", {b"m2", b"contribution"}), (b"m2", {b"contribution"})):
            in_use_hashes = {digest(n) for n in in_use}
            committed = committed_with(state, digest(name), 1)
            pruning = pool.on_commit(committed, lambda: in_use_hashes)  # noqa: B023
            assert pruning is not None  # a new model: the weights it made useless go
            pruned += await pruning
        kept = [io.store.weights.has(digest(name)) for name in names]
        pool.close()
        io.close()
        return pruned, kept

    pruned, kept = asyncio.run(scenario())
    # retain_models is 2: m0 fell out when m2 was committed
    assert kept == [False, True, True, True, False]
    assert pruned == 2


def test_a_new_model_drops_the_weights_it_made_useless(tmp_path: Path) -> None:
    async def scenario() -> list[bool]:
        pool, io = make_pool(tmp_path, [], [])
        names = [b"m0", b"m1", b"stale contribution", b"live contribution"]
        for name in names:
            io.store.weights.put(digest(name), name)
        state = make_genesis_state(make_keys(1))
        pruning = pool.on_commit(
            committed_with(state, digest(b"m1"), 1), lambda: {digest(names[3])}
        )
        assert pruning is not None
        await pruning
        kept = [io.store.weights.has(digest(name)) for name in names]
        pool.close()
        io.close()
        return kept

    assert asyncio.run(scenario()) == [True, True, False, True]


def test_weights_the_learner_just_wrote_outlive_the_next_prune_and_go_at_the_one_after(
    tmp_path: Path,
) -> None:
    """An early contribution is written before the commit that makes it current, and before
    the contribution pool lists it: the prune at that commit must not delete it."""

    async def scenario() -> list[list[bool]]:
        pool, io = make_pool(tmp_path, [], [])
        fresh = FreshWrites()
        state = make_genesis_state(make_keys(1))
        io.store.weights.put(digest(b"early"), b"early")
        fresh.add(digest(b"early"))
        seen = []
        for height, model in ((1, b"m1"), (2, b"m2"), (3, b"m3")):
            io.store.weights.put(digest(model), model)
            pruning = pool.on_commit(committed_with(state, digest(model), height), set, fresh)
            assert pruning is not None
            await pruning
            seen.append([io.store.weights.has(digest(b"early"))])
        pool.close()
        io.close()
        return seen

    # kept by the prune at its commit; by the next, nothing names it: stale
    assert asyncio.run(scenario()) == [[True], [False], [False]]


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


def test_validators_fetching_a_proposed_model_in_parts_serve_each_other_what_they_have(
    tmp_path: Path,
) -> None:
    data = bytes(range(256)) * (9 * PART_BYTES // 256 + 100)  # 10 parts
    model = digest(data)
    maker = Source("maker:1", {model: data})
    endpoints = ["v0:1", "v1:1", "v2:1"]

    async def scenario() -> None:
        pools: dict[str, WeightsPool] = {}
        ios = []
        peers: dict[str, list[Source]] = {e: [maker] for e in endpoints}
        for i, me in enumerate(endpoints):
            pools[me], io = make_pool(tmp_path, peers[me], [], name=f"v{i}.db")
            ios.append(io)
        for me in endpoints:
            peers[me] += [Source(e, {}, pool=pools[e]) for e in endpoints if e != me]
        plans = {
            me: compute_spread_plan([*endpoints, "maker:1"], "maker:1", me) for me in endpoints
        }
        fetched = await asyncio.gather(
            *(pools[me].get(model, "maker:1", plans[me]) for me in endpoints)
        )
        assert all(read(f) == data for f in fetched)
        # each part left the maker about once, not once per validator (10 parts, 3 validators)
        assert maker.parts_served <= 12
        served_by_validators = sum(s.parts_served for e in endpoints for s in peers[e][1:])
        assert served_by_validators >= 15
        for pool in pools.values():
            pool.close()
        for io in ios:
            io.close()

    asyncio.run(scenario())


def test_parts_a_stripe_owner_does_not_deliver_come_from_the_maker(tmp_path: Path) -> None:
    data = bytes(range(256)) * (5 * PART_BYTES // 256)  # 5 parts
    model = digest(data)
    maker = Source("maker:1", {model: data})
    silent = Source("v1:1", {})  # a validator that is not fetching (nor holding) the model

    async def scenario() -> None:
        pool, io = make_pool(tmp_path, [maker, silent], [])
        plan = compute_spread_plan(["v0:1", "v1:1", "maker:1"], "maker:1", "v0:1")
        assert plan is not None and plan.owners == {1: "v1:1"}
        assert read(await pool.get(model, "maker:1", plan)) == data
        assert silent.asked == ["v1:1 1/2"]
        pool.close()
        io.close()

    asyncio.run(scenario())


def test_no_plan_for_a_node_that_is_not_among_the_receivers_or_alone() -> None:
    assert compute_spread_plan(["a:1", "b:1"], "a:1", "b:1") is None  # b fetches alone
    assert compute_spread_plan(["a:1", "b:1", "c:1"], "a:1", "x:1") is None
    plan = compute_spread_plan(["c:1", "a:1", "b:1", ""], "a:1", "c:1")
    assert plan is not None and (plan.stripe, plan.stripes, plan.owners) == (1, 2, {0: "b:1"})


class Oversized(Source):
    """A peer that announces weights over the chain's limit."""

    async def fetch_weights(self, weights_hash: bytes, max_bytes: int, into: Path) -> bool:
        self.asked.append(self.address)
        raise OversizedWeights(max_bytes + 1, max_bytes)


def test_weights_over_the_limit_are_not_read_and_are_said_once_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    counted: list[tuple[str, str]] = []

    async def scenario() -> list[Path | None]:
        pool, io = make_pool(tmp_path, [Oversized("big:1", {})], [])
        pool.problems = WeightsProblems(lambda what, reason: counted.append((what, reason)))
        got = [
            await pool.get(digest(b"huge"), what="contribution"),
            await pool.get(digest(b"huge too"), what="contribution"),
        ]
        pool.close()
        io.close()
        return got

    with caplog.at_level(logging.DEBUG, logger="learnchain.weights"):
        assert asyncio.run(scenario()) == [None, None]
    assert counted == [("contribution", "too_large")] * 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "over the chain's max_weights_bytes" in warnings[0].getMessage()
