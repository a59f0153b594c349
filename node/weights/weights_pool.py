"""Model weights by hash: from the store, pushed by peers, or fetched from them; kept, retained
and pruned.

Weights are content-addressed: any weights whose canonical hash checks are as good as any other
copy, so they are taken from whoever has them. They arrive into a file
(node/store/weights_store.py's ``partial/``), are checked there slice by slice, and are renamed into
place under their hash: the pool hands out paths, never the bytes, so a node holds no model in
memory to receive, keep or serve it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Protocol

from learnchain.consensus.state import ChainState
from learnchain.consensus.types import Hash
from learnchain.node.libs.background import Background
from learnchain.node.p2p.peers import OversizedWeights
from learnchain.node.store.fresh_writes import FreshWrites
from learnchain.node.store.store_worker import StoreWorker
from learnchain.node.weights.weights_parts import (
    PartialWeights,
    PartsSource,
    SpreadPlan,
    fetch_in_parts,
)
from learnchain.node.weights.weights_problems import WeightsProblems

PRUNE_EVERY = 50  # heights between prunings of stored weights beyond retain_models
RECENT_PROPOSALS = 64  # proposed models' hashes served to anyone, beside the retained models
log = logging.getLogger("learnchain.weights")


class WeightsChecker(Protocol):
    """Checks weights against the task's model and their hash (the learning worker)."""

    @property
    def max_bytes(self) -> int:
        """The largest weights the task's model can have."""
        ...

    async def verify(self, path: Path, weights_hash: Hash) -> bool:
        """True when the file fits the task's model and has the canonical ``weights_hash``."""
        ...


class WeightsSource(PartsSource, Protocol):
    """A peer that may serve weights (whole, or a stripe of parts)."""

    @property
    def connected(self) -> bool:
        """True when the last call to it went through."""
        ...

    async def fetch_weights(self, weights_hash: bytes, max_bytes: int, into: Path) -> bool:
        """Stream the weights into ``into``; False when the peer does not have them, sends too
        many bytes or stalls."""
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
        self._files = io.store.weights
        self._checker = checker
        self._sources = sources
        self._on_rejected = on_rejected
        self._background = Background()
        self._arriving: dict[Hash, asyncio.Task[Path | None]] = {}
        self.retained = deque(retained, maxlen=retain_models)  # the last committed models
        self._proposed: deque[Hash] = deque(maxlen=RECENT_PROPOSALS)
        self._partials: dict[Hash, PartialWeights] = {}  # being spread: served as they arrive
        self._spreading: dict[Hash, asyncio.Task[Path | None]] = {}
        self._fetching: dict[Hash, asyncio.Future[Path | None]] = {}
        self._partial_added = asyncio.Event()
        self.problems = WeightsProblems()  # the daemon's counts them in its metrics

    def publish(self, weights_hash: Hash) -> None:
        """Weights a proposal names (a candidate model): served to any node from now on."""
        if weights_hash not in self._proposed:
            self._proposed.append(weights_hash)

    def is_public(self, weights_hash: Hash) -> bool:
        """True for a committed model or a proposed one; other weights (a validator's own
        contribution, which reflects its private data) are served only to validators."""
        return weights_hash in self.retained or weights_hash in self._proposed

    def has(self, weights_hash: Hash) -> bool:
        """True when the weights are here (arriving or stored)."""
        return weights_hash in self._arriving or self._files.has(weights_hash)

    def new_partial(self) -> Path:
        """A fresh file path for weights being written here (the learner's own)."""
        return self._files.new_partial()

    async def get(
        self,
        weights_hash: Hash,
        preferred: str | None = None,
        plan: SpreadPlan | None = None,
        what: str = "model",
    ) -> Path | None:
        """The stored weights' file, fetched first from a peer (``preferred`` first) and checked
        when they are not here; None when no peer has them. With a ``plan`` (a proposed model
        that every validator fetches from its maker, ``preferred``), they are fetched in parts
        with the others. ``what`` they are (a contribution, a proposal, a model) is what a
        problem with them is reported as."""
        arriving = self._arriving.get(weights_hash)
        if arriving is not None:
            await asyncio.wait([arriving])
        if self._files.has(weights_hash):
            return self._files.path_of(weights_hash)
        fetching = self._fetching.get(weights_hash)
        if fetching is None:  # one fetch per weights, whoever else asks meanwhile
            fetching = asyncio.ensure_future(self._fetch(weights_hash, preferred, plan, what))
            self._fetching[weights_hash] = fetching
            fetching.add_done_callback(lambda _: self._fetching.pop(weights_hash, None))
        return await asyncio.shield(fetching)

    async def _fetch(
        self, weights_hash: Hash, preferred: str | None, plan: SpreadPlan | None, what: str
    ) -> Path | None:
        if plan is not None and preferred is not None:
            spreading = self._spreading.get(weights_hash)
            if spreading is None:
                spreading = asyncio.ensure_future(self._spread(weights_hash, preferred, plan))
                self._spreading[weights_hash] = spreading
                spreading.add_done_callback(lambda _: self._spreading.pop(weights_hash, None))
            path = await asyncio.shield(spreading)
            if path is not None:
                return path
        for source in compute_fetch_order(self._sources(), preferred):
            partial = self._files.new_partial()
            try:
                fetched = await source.fetch_weights(weights_hash, self._checker.max_bytes, partial)
            except OversizedWeights as error:
                partial.unlink(missing_ok=True)
                self.problems.report(
                    what, "too_large", f"{weights_hash.hex()[:12]} from {source.address}: {error}"
                )
                continue
            if fetched:
                kept = await self.keep(weights_hash, partial, what)
                if kept is not None:
                    return kept
            else:
                partial.unlink(missing_ok=True)
        return None

    async def _spread(self, weights_hash: Hash, maker: str, plan: SpreadPlan) -> Path | None:
        sources = {source.address: source for source in self._sources()}
        owners = {i: sources[e] for i, e in plan.owners.items() if e in sources}
        partial: PartialWeights | None = None
        try:
            partial = await fetch_in_parts(
                weights_hash,
                sources.get(maker),
                owners,
                plan.stripe,
                plan.stripes,
                self._checker.max_bytes,
                self._files.new_partial,
                lambda started: self._add_partial(weights_hash, started),
            )
            if partial is None:
                return None
            kept = await self.keep(weights_hash, partial.path)
            if kept is not None:
                partial.path = kept  # peers still streaming a stripe read it from its new place
            return kept
        finally:
            started = self._partials.pop(weights_hash, None)
            if started is not None and (partial is None or started is not partial):
                started.path.unlink(missing_ok=True)

    def _add_partial(self, weights_hash: Hash, partial: PartialWeights) -> None:
        self._partials[weights_hash] = partial
        self._partial_added.set()
        self._partial_added = asyncio.Event()

    async def find_parts(self, weights_hash: Hash, wait: float) -> PartialWeights | None:
        """The weights as parts to serve: whole when stored, as they arrive while this node is
        fetching them in parts (waiting up to ``wait`` seconds for such a fetch to begin);
        None when it has not got them."""
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            partial = self._partials.get(weights_hash)
            if partial is not None:
                return partial
            size = self._files.get_size(weights_hash)
            if size is not None:
                return PartialWeights(size, self._files.path_of(weights_hash), complete=True)
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return None
            try:
                await asyncio.wait_for(self._partial_added.wait(), left)
            except TimeoutError:
                return None

    def offer(self, weights_hash: Hash, data: bytes) -> None:
        """Weights pushed beside a message whose signature checked (small ones); kept once
        their hash checks, in the background."""
        if self.has(weights_hash):
            return
        task = self._background.spawn(self._keep_pushed(weights_hash, data))
        self._arriving[weights_hash] = task
        task.add_done_callback(lambda _: self._arriving.pop(weights_hash, None))

    async def _keep_pushed(self, weights_hash: Hash, data: bytes) -> Path | None:
        partial = self._files.new_partial()
        await self._io.run(partial.write_bytes, data)
        return await self.keep(weights_hash, partial)

    async def keep(self, weights_hash: Hash, partial: Path, what: str = "model") -> Path | None:
        """Keep the weights in the file ``partial`` when they fit the task's model and have
        ``weights_hash`` (moved into the store: their path); else delete it, count it as
        rejected, and None."""
        if not await self._checker.verify(partial, weights_hash):
            partial.unlink(missing_ok=True)
            self._on_rejected()
            self.problems.report(
                what, "bad_weights", f"{weights_hash.hex()[:12]}: not the task's model or its hash"
            )
            return None
        return self._files.adopt(partial, weights_hash)

    def adopt_own(self, partial: Path, weights_hash: Hash) -> Path:
        """This node's own weights (trained or aggregated), written by its learner, which
        computed their hash as it wrote them: into the store before they are announced."""
        return self._files.adopt(partial, weights_hash)

    def path_of(self, weights_hash: Hash) -> Path | None:
        """The stored weights' file, or None."""
        return self._files.path_of(weights_hash) if self._files.has(weights_hash) else None

    def on_commit(
        self,
        state: ChainState,
        in_use: Callable[[], set[Hash]],
        fresh: FreshWrites | None = None,
    ) -> asyncio.Task[int] | None:
        """Retain the committed model; when it changed, drop the weights the new model made
        useless (contributions to and proposals of the last), and every ``PRUNE_EVERY``
        heights the rest, except ``in_use()`` (this height's work in progress) and the
        learner's ``fresh`` writes: the prune running in the background, if any."""
        changed = not self.retained or state.model_hash != self.retained[-1]
        if changed:
            self.retained.append(state.model_hash)
        if changed or state.height % PRUNE_EVERY == 0:
            return self._background.spawn(self.prune(in_use(), fresh or FreshWrites()))
        return None

    async def prune(self, in_use: set[Hash], fresh: FreshWrites) -> int:
        """Delete stored weights other than the retained models, ``in_use``, what is arriving
        and what the learner wrote since the previous prune began; how many."""
        fresh.rotate()
        keep = set(self.retained) | set(self._arriving) | set(self._fetching) | in_use
        pruned: int = await self._io.run(self._files.prune, keep, fresh.__contains__)
        log.debug("pruned %d stored weights", pruned)
        return pruned

    def close(self) -> None:
        """Cancel checks and writes in flight."""
        self._background.cancel()
