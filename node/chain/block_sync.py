"""Block sync: catch up from a peer that is ahead, verifying commit signatures in workers.

Blocks stream in batches (GetBlocks); chunks of them have their commit signatures verified in
worker processes, up to ``SYNC_CHUNKS_VERIFYING`` chunks ahead, and are handed to the engine in
order, never more than ``SYNC_WINDOW`` blocks ahead of it. The engine checks every block again
(from the verifier's cache), so a worker is an accelerator, never a judge.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import random
import signal
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

import grpc

from learnchain.consensus.crypto import SignatureVerifier, compute_valid_signatures
from learnchain.consensus.events import CommitReceived
from learnchain.consensus.types import PublicKey, Signature
from learnchain.node.chain.engine_inbox import EngineInbox
from learnchain.node.libs.background import Background
from learnchain.proto import learnchain_pb2 as pb
from learnchain.proto.wire import WireError, block_from_proto, commit_from_proto

SYNC_WINDOW = 512  # blocks a catch-up stream may run ahead of the engine
SYNC_CHUNK = 64  # synced blocks whose signatures are verified together
SYNC_CHUNKS_VERIFYING = 3  # chunks whose signatures may be in verification at once
log = logging.getLogger("learnchain.sync")


def create_verifier_pool() -> ProcessPoolExecutor:
    """Processes that verify catch-up signatures: threads would contend for the GIL with the
    event loop between libsodium calls (measured: twice the CPU per synced block). Spawned, not
    forked, so that they hold neither torch nor the node's threads; started on first use."""
    return ProcessPoolExecutor(
        max_workers=2,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=ignore_interrupts,
    )


def ignore_interrupts() -> None:
    """A worker leaves Ctrl-C (SIGINT to the terminal's whole process group) to the node,
    which stops it; it would otherwise print a KeyboardInterrupt traceback each."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class BlockSource(Protocol):
    """A peer that serves committed blocks."""

    @property
    def address(self) -> str:
        """The peer's host:port."""
        ...

    def get_blocks(self, chain_id: str, from_height: int) -> AsyncIterator[pb.BlockBatch]:
        """Batches of committed blocks of ``chain_id`` with their commits from ``from_height``."""
        ...


class BlockSync:
    """One catch-up at a time, from the first peer that serves it."""

    def __init__(
        self,
        inbox: EngineInbox,
        verifier: SignatureVerifier,
        sources: Callable[[], Sequence[BlockSource]],
        pool_factory: Callable[[], Executor] = create_verifier_pool,
        on_caught_up: Callable[[], None] = lambda: None,
    ) -> None:
        self._inbox = inbox
        self._on_caught_up = on_caught_up
        self._verifier = verifier
        self._sources = sources
        self._pool_factory = pool_factory
        self._pool = pool_factory()
        self._background = Background()
        self.syncing = False  # a stream is open (a probe at the tip, or a catch-up)
        self.catching_up = False  # blocks arrived and are being applied

    def request(self, from_height: int) -> None:
        """Peers are ahead: catch up from ``from_height`` unless a catch-up is running."""
        log.debug("sync requested from height %d (syncing: %s)", from_height, self.syncing)
        if not self.syncing:
            self.syncing = True
            self._background.spawn(self.sync(from_height))

    async def sync(self, from_height: int) -> None:
        """Stream blocks from a random peer that serves them into the engine's inbox."""
        self.syncing = True
        try:
            sources = list(self._sources())
            random.shuffle(sources)
            for source in sources:
                try:
                    from_height = await self._sync_from(source, from_height)
                    # Stay "syncing" until the engine has applied what was streamed, so that a
                    # message from the tip meanwhile does not start a second, duplicate stream.
                    await self._inbox.wait_for_height(from_height - 1)
                    log.debug("synced to height %d from %s", from_height - 1, source.address)
                    break
                except (grpc.aio.AioRpcError, WireError) as error:
                    log.debug("sync from %s failed: %s", source.address, error)
        finally:
            self.syncing = False
            if self.catching_up:
                self.catching_up = False
                self._on_caught_up()

    async def _sync_from(self, source: BlockSource, from_height: int) -> int:
        """Stream from one peer; the height after the last block handed on."""
        chunk: list[CommitReceived] = []
        verifying: deque[asyncio.Task[None]] = deque()  # chunks, oldest first
        async for batch in source.get_blocks(self._inbox.state.chain_id, from_height):
            for item in batch.blocks:
                self.catching_up = True
                block = block_from_proto(item.block)
                chunk.append(CommitReceived(block, commit_from_proto(item.commit)))
                from_height = block.height + 1
            if len(chunk) >= SYNC_CHUNK:
                while len(verifying) >= SYNC_CHUNKS_VERIFYING:
                    await verifying.popleft()
                previous = verifying[-1] if verifying else None
                verifying.append(asyncio.create_task(self._hand_on(chunk, previous)))
                chunk = []
        await self._hand_on(chunk, verifying[-1] if verifying else None)
        return from_height

    async def _hand_on(
        self, chunk: list[CommitReceived], previous: asyncio.Task[None] | None
    ) -> None:
        """Hand synced blocks to the engine after the ``previous`` chunk, their commit signatures
        verified in a worker process first.

        A short chunk, such as the few blocks a validator that fell behind needs, goes straight
        to the engine, which verifies it: starting the worker processes takes seconds on a
        loaded machine, and a validator that waits for them misses its proposer turn.
        """
        if not chunk:
            if previous is not None:
                await previous
            return
        await self._inbox.wait_for_height(chunk[-1].block.height - SYNC_WINDOW)
        if len(chunk) >= SYNC_CHUNK:
            self._verifier.remember(await self._verify_in_workers(chunk))
        if previous is not None:
            await previous
        for event in chunk:
            self._inbox.submit(event)

    async def _verify_in_workers(
        self, chunk: list[CommitReceived]
    ) -> list[tuple[PublicKey, bytes, Signature]]:
        """The valid commit signatures of ``chunk``, checked in the worker processes."""
        state = self._inbox.state
        triples = []
        for event in chunk:
            for sig in event.commit.signatures:
                bond = state.bonds.get(sig.validator)
                if bond is not None:
                    message = event.commit.get_sign_bytes(state.chain_id, sig)
                    triples.append((bond.public_key, message, sig.signature))
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, compute_valid_signatures, triples)
        except BrokenProcessPool:
            log.warning("signature worker died; the engine verifies this chunk itself")
            broken, self._pool = self._pool, self._pool_factory()
            broken.shutdown(wait=False, cancel_futures=True)
            return []

    def close(self) -> None:
        """Stop catching up and the worker processes."""
        self._background.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
