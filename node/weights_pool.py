"""Model weights by hash: from the store, pushed by peers, or fetched from them; kept, retained
and pruned.

Weights are content-addressed: any weights whose canonical hash checks are as good as any other
copy, so they are taken from whoever has them. Checked weights are usable at once and written in
the background; the one store thread writes in order, so a block naming them (decided only after
they were checked) is never written before them.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from learnchain.consensus.state import ChainState
from learnchain.consensus.types import Hash
from learnchain.ml.codec import WeightsBytes
from learnchain.node.background import Background
from learnchain.node.learning import EncodedWeights
from learnchain.node.store_worker import StoreWorker
from learnchain.node.weights_parts import PartialWeights, PartsSource, SpreadPlan, fetch_in_parts

PRUNE_EVERY = 50  # heights between prunings of stored weights beyond retain_models
RECENT_PROPOSALS = 64  # proposed models' hashes served to anyone, beside the retained models
log = logging.getLogger("learnchain.weights")


class WeightsChecker(Protocol):
    """Checks weights against the task's model and their hash (the learning worker)."""

    @property
    def max_bytes(self) -> int:
        """The largest weights the task's model can have."""
        ...

    async def verify(self, data: WeightsBytes, weights_hash: Hash) -> bool:
        """True when ``data`` fits the task's model and has the canonical ``weights_hash``."""
        ...


class WeightsSource(PartsSource, Protocol):
    """A peer that may serve weights (whole, or a stripe of parts)."""

    @property
    def connected(self) -> bool:
        """True when the last call to it went through."""
        ...

    async def fetch_weights(self, weights_hash: bytes, max_bytes: int) -> bytearray | None:
        """The weights, or None when it does not have them, sends too many bytes or stalls."""
        ...


def compute_fetch_order(
    sources: Sequence[WeightsSource], preferred: str | None
) -> list[WeightsSource]:
    """Whom to ask, in turn: ``preferred`` (who made the weights), then the peers that answer,
    in random order (spreading the load), then the rest, so a hung peer is tried last."""
    order = list(sources)
    random.shuffle(order)
    order.sort(key=lambda source: (source.address != preferred, not source.connected))
    return order


class WeightsPool:
    """Get, offer, keep, retain and prune weights."""

    def __init__(
        self,
        io: StoreWorker,
        checker: WeightsChecker,
        sources: Callable[[], Sequence[WeightsSource]],
        on_rejected: Callable[[], None],
        retained: Iterable[Hash],
        retain_models: int,
    ) -> None:
        self._io = io
        self._checker = checker
        self._sources = sources
        self._on_rejected = on_rejected
        self._background = Background()
        self._arriving: dict[Hash, asyncio.Task[bool]] = {}
        self._unstored: dict[Hash, WeightsBytes] = {}  # checked, being written
        self.retained = deque(retained, maxlen=retain_models)  # the last committed models
        self._proposed: deque[Hash] = deque(maxlen=RECENT_PROPOSALS)
        self._partials: dict[Hash, PartialWeights] = {}  # being spread: served as they arrive
        self._spreading: dict[Hash, asyncio.Task[WeightsBytes | None]] = {}
        self._partial_added = asyncio.Event()
        # The whole weights last served in parts: every validator asks the maker for its stripe
        # at once, and all of them are served from one read.
        self._whole: tuple[Hash, asyncio.Task[PartialWeights | None]] | None = None

    def publish(self, weights_hash: Hash) -> None:
        """Weights a proposal names (a candidate model): served to any node from now on."""
        if weights_hash not in self._proposed:
            self._proposed.append(weights_hash)

    def is_public(self, weights_hash: Hash) -> bool:
        """True for a committed model or a proposed one; other weights (a validator's own
        contribution, which reflects its private data) are served only to validators."""
        return weights_hash in self.retained or weights_hash in self._proposed

    def has(self, weights_hash: Hash) -> bool:
        """True when the weights are here (arriving, being written or stored)."""
        return (
            weights_hash in self._arriving
            or weights_hash in self._unstored
            or self._io.store.weights.has(weights_hash)
        )

    async def get(
        self, weights_hash: Hash, preferred: str | None = None, plan: SpreadPlan | None = None
    ) -> WeightsBytes | None:
        """The weights from here, or fetched from a peer (``preferred`` first) and checked;
        None when no peer has them. With a ``plan`` (a proposed model that every validator
        fetches from its maker, ``preferred``), they are fetched in parts with the others."""
        arriving = self._arriving.get(weights_hash)
        if arriving is not None:
            await asyncio.wait([arriving])
        unstored = self._unstored.get(weights_hash)
        if unstored is not None:
            return unstored
        store = self._io.store
        if store.weights.has(weights_hash):
            return b"".join(
                await self._io.run(lambda: list(store.weights.iter_chunks(weights_hash)))
            )
        if plan is not None and preferred is not None:
            spreading = self._spreading.get(weights_hash)
            if spreading is None:
                spreading = asyncio.ensure_future(self._spread(weights_hash, preferred, plan))
                self._spreading[weights_hash] = spreading
                spreading.add_done_callback(lambda _: self._spreading.pop(weights_hash, None))
            data = await asyncio.shield(spreading)
            if data is not None:
                return data
        sources = compute_fetch_order(self._sources(), preferred)
        for source in sources:
            data = await source.fetch_weights(weights_hash, self._checker.max_bytes)
            if data is not None and await self.keep(weights_hash, data):
                return data
        return None

    async def _spread(
        self, weights_hash: Hash, maker: str, plan: SpreadPlan
    ) -> WeightsBytes | None:
        sources = {source.address: source for source in self._sources()}
        owners = {i: sources[e] for i, e in plan.owners.items() if e in sources}
        try:
            partial = await fetch_in_parts(
                weights_hash,
                sources.get(maker),
                owners,
                plan.stripe,
                plan.stripes,
                self._checker.max_bytes,
                lambda partial: self._add_partial(weights_hash, partial),
            )
            if partial is None or not await self.keep(weights_hash, partial.buffer):
                return None
            return partial.buffer
        finally:
            self._partials.pop(weights_hash, None)

    def _add_partial(self, weights_hash: Hash, partial: PartialWeights) -> None:
        self._partials[weights_hash] = partial
        self._partial_added.set()
        self._partial_added = asyncio.Event()

    async def find_parts(self, weights_hash: Hash, wait: float) -> PartialWeights | None:
        """The weights as parts to serve: whole when here, as they arrive while this node is
        fetching them in parts (waiting up to ``wait`` seconds for such a fetch to begin);
        None when it has not got them."""
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            partial = self._partials.get(weights_hash)
            if partial is not None:
                return partial
            if self.has(weights_hash) and weights_hash not in self._arriving:
                if self._whole is None or self._whole[0] != weights_hash:
                    reading = asyncio.ensure_future(self._read_whole(weights_hash))
                    self._whole = (weights_hash, reading)
                whole = await asyncio.shield(self._whole[1])
                if whole is None:
                    self._whole = None
                return whole
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return None
            try:
                await asyncio.wait_for(self._partial_added.wait(), left)
            except TimeoutError:
                return None

    async def _read_whole(self, weights_hash: Hash) -> PartialWeights | None:
        data = await self.get(weights_hash)
        return None if data is None else PartialWeights(len(data), data)

    def offer(self, weights_hash: Hash, data: WeightsBytes) -> None:
        """Weights pushed beside a message whose signature checked; kept once their hash
        checks, in the background."""
        if self.has(weights_hash):
            return
        task = self._background.spawn(self.keep(weights_hash, data))
        self._arriving[weights_hash] = task
        task.add_done_callback(lambda _: self._arriving.pop(weights_hash, None))

    async def keep(self, weights_hash: Hash, data: WeightsBytes) -> bool:
        """Keep weights that fit the task's model and have ``weights_hash``; False (and counted
        as rejected) when they do not."""
        if not await self._checker.verify(data, weights_hash):
            self._on_rejected()
            return False
        self._unstored[weights_hash] = data
        write = self._background.spawn(
            self._io.run(self._io.store.weights.put, weights_hash, [data])
        )
        write.add_done_callback(lambda task: self._forget_unstored(weights_hash, task))
        return True

    def _forget_unstored(self, weights_hash: Hash, write: asyncio.Task[Any]) -> None:
        """Drop weights from memory once written; weights whose write failed stay usable here
        (the store is failing: the block write that follows will stop the node)."""
        if not write.cancelled() and write.exception() is not None:
            log.error("weights %s were not stored: %s", weights_hash.hex()[:12], write.exception())
            return
        self._unstored.pop(weights_hash, None)

    async def store(self, weights: EncodedWeights) -> None:
        """Store this node's own weights (trained or aggregated) before announcing them."""
        await self._io.run(self._io.store.weights.put, weights.weights_hash, [weights.data])

    def on_commit(self, state: ChainState, in_use: Callable[[], set[Hash]]) -> None:
        """Retain the committed model; every ``PRUNE_EVERY`` heights prune the rest, except
        ``in_use()`` (the current height's work in progress, asked for only then)."""
        if not self.retained or state.model_hash != self.retained[-1]:
            self.retained.append(state.model_hash)
        if state.height % PRUNE_EVERY == 0:
            self._background.spawn(self.prune(in_use()))

    async def prune(self, in_use: set[Hash]) -> int:
        """Delete stored weights other than the retained models, ``in_use`` and what is
        arriving; how many."""
        keep = set(self.retained) | set(self._arriving) | set(self._unstored) | in_use
        pruned: int = await self._io.run(self._io.store.weights.prune, keep)
        log.debug("pruned %d stored weights", pruned)
        return pruned

    def close(self) -> None:
        """Cancel checks and writes in flight."""
        self._background.cancel()
