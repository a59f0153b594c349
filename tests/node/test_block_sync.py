"""Block sync streams committed blocks from a peer that is ahead into the engine, in order,
verifying long runs of commit signatures in workers first; a peer that fails is passed over."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import Executor, ThreadPoolExecutor

import grpc

from learnchain.consensus.crypto import SignatureVerifier
from learnchain.consensus.engine import Engine
from learnchain.consensus.events import CommitReceived
from learnchain.node.chain.block_sync import SYNC_CHUNK, BlockSync
from learnchain.node.chain.engine_inbox import EngineInbox
from learnchain.proto import learnchain_pb2 as pb
from learnchain.proto.wire import block_to_proto, commit_to_proto
from tests.consensus.chain import CHAIN, Chain, make_genesis_state, make_keys

KEYS = make_keys(4)


def make_blocks(count: int) -> tuple[Chain, list[pb.BlockWithCommit]]:
    chain = Chain(make_genesis_state(KEYS), KEYS)
    genesis = chain.state
    items = []
    for _ in range(count):
        block = chain.next_block()
        chain.commit(block)
        assert chain.last_commit is not None
        items.append(
            pb.BlockWithCommit(
                block=block_to_proto(block), commit=commit_to_proto(chain.last_commit)
            )
        )
    chain.state = genesis
    return chain, items


class Source:
    def __init__(self, address: str, items: list[pb.BlockWithCommit], fail: bool = False) -> None:
        self.address = address
        self.items = items
        self.fail = fail
        self.asked: list[int] = []

    async def get_blocks(self, chain_id: str, from_height: int) -> AsyncIterator[pb.BlockBatch]:
        assert chain_id == CHAIN
        self.asked.append(from_height)
        if self.fail:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata()
            )
        rest = self.items[from_height - 1 :]
        for start in range(0, len(rest), 10):
            yield pb.BlockBatch(blocks=rest[start : start + 10])


def run_sync(sources: list[Source], caught_up: list[bool] | None = None) -> tuple[int, list[int]]:
    """Sync into a full node's engine: its height and the heights handed to it (and, in
    ``caught_up``, one entry per catch-up that ended)."""
    chain, _ = make_blocks(0)
    verifier = SignatureVerifier()
    engine = Engine(chain.state, None, verifier=verifier)
    inbox = EngineInbox(engine)
    pools: list[Executor] = []

    def pool() -> Executor:
        pools.append(ThreadPoolExecutor(max_workers=1))
        return pools[-1]

    handed: list[int] = []

    async def drive() -> None:
        while True:
            for event in await inbox.take_batch(512):
                assert isinstance(event, CommitReceived)
                handed.append(event.block.height)
                engine.handle(event)
            inbox.notify_progress()

    async def scenario() -> None:
        ended = caught_up if caught_up is not None else []
        sync = BlockSync(inbox, verifier, lambda: sources, pool, lambda: ended.append(True))
        driver = asyncio.create_task(drive())
        engine.start()
        await sync.sync(1)
        assert not sync.syncing and not sync.catching_up
        driver.cancel()
        sync.close()

    asyncio.run(scenario())
    return engine.state.height, handed


def test_a_few_blocks_go_straight_to_the_engine_in_order() -> None:
    _, items = make_blocks(5)
    height, handed = run_sync([Source("a:1", items)])
    assert height == 5
    assert handed == [1, 2, 3, 4, 5]


def test_a_long_run_is_verified_in_chunks_and_applied_in_order() -> None:
    count = SYNC_CHUNK * 2 + 5
    _, items = make_blocks(count)
    height, handed = run_sync([Source("a:1", items)])
    assert height == count
    assert handed == list(range(1, count + 1))


def test_a_failing_peer_is_passed_over_for_the_next() -> None:
    _, items = make_blocks(3)
    broken, good = Source("broken:1", [], fail=True), Source("good:1", items)
    height, _ = run_sync([broken, good])
    assert height == 3
    assert good.asked == [1]


def test_a_probe_at_the_tip_is_not_a_catch_up_but_blocks_that_arrive_are() -> None:
    """Learning holds back only while blocks are being applied (not during the probe every
    gossip tick), and resumes once a catch-up is over."""
    ended: list[bool] = []
    run_sync([Source("a:1", [])], ended)
    assert ended == []
    _, items = make_blocks(3)
    run_sync([Source("a:1", items)], ended)
    assert ended == [True]
