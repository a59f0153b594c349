"""Weights spread in parts, the way CometBFT spreads a block's parts: every validator that is
fetching a proposed model also serves the parts it already has.

A model of S bytes is cut into parts of ``PART_BYTES``. The R validators that must fetch it (all
but its maker), sorted by endpoint, split the parts into R stripes: part k is in stripe k mod R.
Each validator streams its own stripe from the maker and every other stripe from the validator
it belongs to, which serves each part as soon as it has it (its own stream from the maker). The
maker then uploads each part about once rather than once per validator, and every validator
uploads its stripe to the others: over links of equal speed the spread takes about one
transfer of the model instead of R. Whatever a stripe's owner does not deliver (it is down,
slow, or sees another validator set) is fetched from the maker at the end.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

PART_BYTES = 256 * 1024
PART_WAIT_SECONDS = 4.0  # how long a server waits for a part it is still receiving
MAX_STRIPES = 1024


class PartsSource(Protocol):
    """A peer that streams a stripe of weights."""

    @property
    def address(self) -> str: ...

    def stream_parts(
        self, weights_hash: bytes, stripe: int, stripes: int, max_bytes: int
    ) -> AsyncIterator[tuple[int, int, bytes]]:
        """(part, total size, data) for each part of the stripe, as the peer has them."""
        ...


@dataclass(frozen=True)
class SpreadPlan:
    """This validator's part in spreading one model: its stripe, and who owns the others."""

    stripe: int
    stripes: int
    owners: dict[int, str]  # stripe -> endpoint, for every stripe but this validator's


def compute_spread_plan(endpoints: Iterable[str], maker: str, me: str) -> SpreadPlan | None:
    """The plan for fetching a model made at ``maker`` with the other validators at
    ``endpoints``, or None when this node (``me``) is not one of them or fetches alone."""
    receivers = sorted({e for e in endpoints if e and e != maker})
    if me not in receivers or len(receivers) < 2:
        return None
    owners = {i: e for i, e in enumerate(receivers) if e != me}
    return SpreadPlan(receivers.index(me), len(receivers), owners)


def compute_part_count(size: int) -> int:
    """How many parts ``size`` bytes make."""
    return max(1, -(-size // PART_BYTES))


def compute_stripe(parts: int, stripe: int, stripes: int) -> range:
    """The parts of one stripe."""
    return range(stripe, parts, stripes)


def compute_part_slice(size: int, part: int) -> slice:
    """Where ``part`` lies in weights of ``size`` bytes."""
    start = part * PART_BYTES
    return slice(start, min(size, start + PART_BYTES))


class PartialWeights:
    """Weights arriving part by part into a file; each part can be served as soon as it is
    here. ``complete`` weights (a stored file) are served from the file they are in."""

    def __init__(self, size: int, path: Path, complete: bool = False) -> None:
        self.size = size
        self.path = path
        self.parts = compute_part_count(size)
        self._arrived = [asyncio.Event() for _ in range(self.parts)]
        self._missing = self.parts
        if complete:
            for event in self._arrived:
                event.set()
            self._missing = 0
        else:
            with path.open("wb") as handle:
                handle.truncate(size)

    def has(self, part: int) -> bool:
        """True once ``part`` is here."""
        return self._arrived[part].is_set()

    def put(self, part: int, data: bytes) -> bool:
        """Keep ``part``; False when it has no such part or the wrong length."""
        if not 0 <= part < self.parts:
            return False
        where = compute_part_slice(self.size, part)
        if len(data) != where.stop - where.start:
            return False
        if not self.has(part):
            descriptor = os.open(self.path, os.O_WRONLY)
            try:
                os.pwrite(descriptor, data, where.start)
            finally:
                os.close(descriptor)
            self._arrived[part].set()
            self._missing -= 1
        return True

    @property
    def complete(self) -> bool:
        """True when every part is here."""
        return self._missing == 0

    async def read(self, part: int, timeout: float) -> bytes | None:
        """``part`` once it is here, or None after ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self._arrived[part].wait(), timeout)
        except TimeoutError:
            return None
        where = compute_part_slice(self.size, part)
        try:
            descriptor = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:  # pruned meanwhile
            return None
        try:
            return os.pread(descriptor, where.stop - where.start, where.start)
        finally:
            os.close(descriptor)


async def iter_stripe(
    partial: PartialWeights, stripe: int, stripes: int
) -> AsyncIterator[tuple[int, bytes]]:
    """(part, data) for each part of a stripe as it arrives; ends when one does not arrive
    within ``PART_WAIT_SECONDS`` (the serving node's own fetch stalled)."""
    for part in compute_stripe(partial.parts, stripe, stripes):
        data = await partial.read(part, PART_WAIT_SECONDS)
        if data is None:
            return
        yield part, data


async def fetch_in_parts(
    weights_hash: bytes,
    maker: PartsSource | None,
    stripe_owners: Mapping[int, PartsSource],
    stripe: int,
    stripes: int,
    max_bytes: int,
    new_path: Callable[[], Path],
    on_start: Callable[[PartialWeights], None] | None = None,
) -> PartialWeights | None:
    """Fetch weights as one of ``stripes`` receivers: stripe ``stripe`` from the maker, stripe
    i from ``stripe_owners[i]``, then anything missing from the maker; the weights, or None
    when they could not all be fetched (their hash is the caller's to check). ``on_start`` gets
    the partial weights once their size is known, so that this node can serve them meanwhile;
    they arrive into a file at ``new_path()``."""
    partial: PartialWeights | None = None

    async def stream(source: PartsSource, index: int, count: int) -> None:
        nonlocal partial
        async for part, total, data in source.stream_parts(weights_hash, index, count, max_bytes):
            if partial is None:
                if not 0 < total <= max_bytes:
                    return
                partial = PartialWeights(total, new_path())
                if on_start is not None:
                    on_start(partial)
            if partial.size != total or not partial.put(part, data) or partial.complete:
                return

    streams = [stream(maker, stripe, stripes)] if maker is not None else []
    streams += [stream(owner, index, stripes) for index, owner in stripe_owners.items()]
    await asyncio.gather(*streams)
    fallbacks = [maker] if maker is not None else []
    for source in [*fallbacks, *stripe_owners.values()]:
        if partial is not None and partial.complete:
            return partial
        await stream(source, 0, 1)
    return partial if partial is not None and partial.complete else None
