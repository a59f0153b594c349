"""The block executor writes decided blocks in one synced batch and tells its listeners of each
block only once it is on disk, in order, with the state before it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from learnchain.consensus.events import CommitBlock
from learnchain.consensus.state import ChainState
from learnchain.node.chain.block_executor import BlockExecutor
from learnchain.node.store.store import Store
from learnchain.node.store.store_worker import StoreWorker
from learnchain.proto.wire import block_to_proto
from tests.consensus.chain import Chain, make_genesis_state, make_keys

KEYS = make_keys(4)


def decide_blocks(count: int) -> tuple[ChainState, list[CommitBlock]]:
    chain = Chain(make_genesis_state(KEYS), KEYS)
    genesis = chain.state
    decided = []
    for _ in range(count):
        block = chain.next_block()
        state = chain.commit(block)
        assert chain.last_commit is not None
        decided.append(CommitBlock(block, chain.last_commit, state))
    return genesis, decided


def test_listeners_hear_of_each_block_after_it_is_written(tmp_path: Path) -> None:
    genesis, decided = decide_blocks(3)
    heard: list[tuple[int, int, int | None]] = []
    sizes: list[int] = []

    async def scenario() -> None:
        io = StoreWorker(Store(tmp_path / "chain.db"))
        executor = BlockExecutor(io, genesis)

        def listener(action: CommitBlock, previous: ChainState) -> None:
            on_disk = io.store.load_state()
            heard.append(
                (action.block.height, previous.height, None if on_disk is None else on_disk.height)
            )
            sizes.append(executor.block_bytes)

        executor.add_listener(listener)
        for action in decided:
            executor.decide(action)
        assert heard == [] and executor.committed is genesis
        await executor.write_all()
        assert executor.committed is decided[-1].state
        io.close()

    asyncio.run(scenario())
    assert heard == [(1, 0, 3), (2, 1, 3), (3, 2, 3)]
    # each listener is told the size of the block as the store wrote it
    assert sizes == [len(block_to_proto(a.block).SerializeToString()) for a in decided]
    with Store(tmp_path / "chain.db") as store:
        assert [store.get_block(h) for h in (1, 2, 3)] == [a.block for a in decided]


def test_keep_one_leaves_the_newest_write_in_flight(tmp_path: Path) -> None:
    genesis, decided = decide_blocks(2)

    async def scenario() -> list[int]:
        io = StoreWorker(Store(tmp_path / "chain.db"))
        executor = BlockExecutor(io, genesis)
        heard: list[int] = []
        executor.add_listener(lambda action, _: heard.append(action.block.height))
        executor.decide(decided[0])
        executor.start_writing()
        executor.decide(decided[1])
        executor.start_writing()
        await executor.finish_writes(keep_one=True)
        first = list(heard)
        await executor.finish_writes()
        io.close()
        return [*first, -1, *heard]

    assert asyncio.run(scenario()) == [1, -1, 1, 2]


def test_a_failed_write_raises_and_tells_no_listener(tmp_path: Path) -> None:
    genesis, decided = decide_blocks(1)

    async def scenario() -> list[int]:
        store = Store(tmp_path / "chain.db")
        io = StoreWorker(store)
        executor = BlockExecutor(io, genesis)
        heard: list[int] = []
        executor.add_listener(lambda action, _: heard.append(action.block.height))
        store.close()  # every write now fails
        executor.decide(decided[0])
        with pytest.raises(RuntimeError):
            await executor.write_all()
        assert executor.committed is genesis
        return heard

    assert asyncio.run(scenario()) == []
