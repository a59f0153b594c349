"""Judging a proposal before it arrives: every validator computes the round's aggregate itself.

Aggregation is deterministic (§7.4: the rule's output depends only on the contributions, the
model and the last step), and a validator re-computes every proposed aggregate anyway (§3.7).
So when its learning round is ready, a validator that is not the proposer computes the rule's
aggregate of the contributions it holds (the ones the proposer will most likely list), stores it
under its hash, and appraises those contributions (§3.5), while the proposer aggregates and
spreads its proposal. When the block lists exactly those contributions and names exactly that
hash, the proposal is this node's own computation: it needs neither fetching nor re-computing,
and the appraisal is done. Anything else (another listing, a screening rule, a machine whose
floating point differs in the last bit) is judged the usual way; the speculation only moves work
off the verdict's path, never decides it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from learnchain.consensus.messages import Block, Contribution
from learnchain.consensus.state import ChainState
from learnchain.consensus.types import Address, Hash, Height
from learnchain.ml.errors import MLError
from learnchain.node.learning.app_interface import fetch_contribution_weights
from learnchain.node.store.weights_store import EncodedWeights
from learnchain.node.training.learning_worker import LearningWorker
from learnchain.node.weights.weights_pool import WeightsPool

log = logging.getLogger("learnchain.learning")
# Below this a model is re-computed in milliseconds: speculating would only add work for the
# rounds whose listing differs.
SPECULATION_MIN_BYTES = 8 << 20
Listing = frozenset[tuple[Address, Hash]]  # (contributor, weights hash) of each contribution


def compute_listing(contributions: tuple[Contribution, ...] | list[Contribution]) -> Listing:
    """What identifies a set of contributions."""
    return frozenset((c.validator, c.weights_hash) for c in contributions)


@dataclass(frozen=True)
class Speculation:
    """The aggregate this node computed of a listing, and its values of those contributions."""

    model_height: Height
    listing: Listing
    weights: EncodedWeights
    values: dict[Address, float]  # this node's value of each contribution (§3.5)


class Speculator:
    """Computes the round's aggregate and appraisal ahead of the proposal."""

    def __init__(
        self,
        learning: LearningWorker,
        weights: WeightsPool,
        appraise: bool = True,
        get_arrival: Callable[[Contribution], float] = lambda _contribution: 0.0,
    ) -> None:
        self.learning = learning
        self.weights = weights
        self._get_arrival = get_arrival  # when each contribution reached this node
        self.appraise = appraise  # config.toml ``appraise``: values ride on this node's votes
        self.current: Speculation | None = None
        self._started: tuple[Height, Listing] | None = None
        self._running: asyncio.Future[None] | None = None

    def is_started_for(self, model_height: Height) -> bool:
        """True when this model's round is (being) speculated already (once per model)."""
        return self._started is not None and self._started[0] == model_height

    async def speculate(self, state: ChainState, contributions: list[Contribution]) -> None:
        """Aggregate and appraise ``contributions`` to ``state``'s model, ahead of a proposal."""
        model_height = state.learning.model_height
        listing = compute_listing(contributions)
        self._started = (model_height, listing)
        ordered = sorted(contributions, key=lambda c: c.validator)  # as a block lists them
        inputs = await fetch_contribution_weights(self.weights, state, ordered)
        if len(inputs) != len(ordered):
            return
        try:
            weights, used = await self.learning.aggregate(inputs, len(state.validators.validators))
            if sorted(used) != sorted(c.validator.hex() for c in ordered):
                return  # the rule screened some out: the proposer's own screening decides
            arrival = [self._get_arrival(c) for c in ordered]
            values = (
                await self.learning.appraise(inputs, arrival=arrival)
                if self.appraise
                else [0.0] * len(inputs)
            )
        except MLError as error:
            log.debug("no speculation this round: %s", error)
            return
        if self._started == (model_height, listing):
            by_validator = {c.validator: v for c, v in zip(ordered, values, strict=True)}
            self.current = Speculation(model_height, listing, weights, by_validator)

    async def settle(self, block: Block, model_height: Height) -> Speculation | None:
        """The speculation that is exactly this block's update, if any, waiting for the one
        under way when it is of this block's listing (its work would otherwise be done twice)."""
        running = self._running
        if (
            running is not None
            and not running.done()
            and self._started == (model_height, compute_listing(block.contributions))
        ):
            await asyncio.wait([running])
        return self.match(block, model_height)

    def start(self, state: ChainState, contributions: list[Contribution]) -> None:
        """``speculate`` in the background."""
        self._running = asyncio.ensure_future(self.speculate(state, contributions))

    def close(self) -> None:
        """Stop a speculation under way."""
        if self._running is not None:
            self._running.cancel()

    def match(self, block: Block, model_height: Height) -> Speculation | None:
        """The speculation that is exactly this block's update, if any."""
        current = self.current
        if (
            current is None
            or current.model_height != model_height
            or current.weights.weights_hash != block.header.model_hash
            or block.screened
            or current.listing != compute_listing(block.contributions)
        ):
            return None
        return current

    def in_use(self) -> set[Hash]:
        """The speculated aggregate's weights (kept until the round is over)."""
        return set() if self.current is None else {self.current.weights.weights_hash}
