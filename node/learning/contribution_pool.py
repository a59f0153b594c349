"""Aggregate mode's contributions: what validators trained from the current model.

Contributions are kept by the height of the model they were trained from (the state's
``model_height``): the current model's, or the next height's (a validator that committed a
model update before this node did already trains from it). Blocks that keep the model leave
them valid; once the model changes, the older ones are dropped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

from learnchain.consensus.crypto import SignatureVerifier
from learnchain.consensus.messages import Contribution
from learnchain.consensus.state import ChainState, InvalidBlock, check_contribution
from learnchain.consensus.types import Address, Hash, Height


class ContributionError(ValueError):
    """A contribution refused at the door; nothing was kept."""


def compute_awaited_contributors(
    validators: set[Address], last_contributors: set[Address], own: Address
) -> set[Address]:
    """The validators an aggregating proposer waits for: those that contributed at the last
    height (and itself), or all of them when it saw no contribution there. A validator that went
    quiet is not waited out at every height; its contribution is still used when it arrives in
    time, and once it contributes again it is waited for again."""
    live = validators & (last_contributors | {own})
    return live if last_contributors else set(validators)


class ContributionPool:
    """Contributions by height, checked with the state transition's own rule."""

    def __init__(
        self, verifier: SignatureVerifier, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._verifier = verifier
        self._clock = clock
        self._by_height: dict[Height, dict[Address, Contribution]] = {}
        # when each kept contribution first reached this node: a copy arrives after what it
        # copies (§3.5, free riders)
        self._arrived: dict[tuple[Height, Address, Hash], float] = {}
        self.last_contributors: set[Address] = set()  # who contributed to the previous model
        self._model_height = Height(0)

    def receive(self, state: ChainState, contribution: Contribution) -> bool:
        """Check a contribution from the network against ``state`` and keep it when it is for
        the current model or the next; False when it is for another model (not an error)."""
        try:
            check_contribution(state, contribution, self._verifier)
        except InvalidBlock as error:
            raise ContributionError(str(error)) from None
        if contribution.height not in (state.learning.model_height, state.height + 1):
            return False
        self.add(contribution)
        return True

    def add(self, contribution: Contribution) -> None:
        """Keep a contribution (this node's own, or one checked by ``receive``)."""
        self._by_height.setdefault(contribution.height, {})[contribution.validator] = contribution
        self._arrived.setdefault(self._key(contribution), self._clock())

    @staticmethod
    def _key(contribution: Contribution) -> tuple[Height, Address, Hash]:
        return contribution.height, contribution.validator, contribution.weights_hash

    def get_arrival(self, contribution: Contribution) -> float:
        """When ``contribution`` first reached this node (monotonic seconds); infinity when it
        never did (it came with a block)."""
        return self._arrived.get(self._key(contribution), math.inf)

    def get(self, height: Height) -> dict[Address, Contribution]:
        """The contributions for the model of ``height``, by validator."""
        return dict(self._by_height.get(height, {}))

    def iter_weights_hashes(self) -> Iterator[Hash]:
        """The weights every kept contribution names (kept from pruning)."""
        for pool in self._by_height.values():
            for contribution in pool.values():
                yield contribution.weights_hash

    def forget(self, model_height: Height) -> None:
        """Drop the contributions to one model (its attempt failed; fresh ones will come)."""
        self._by_height.pop(model_height, None)
        self._arrived = {k: t for k, t in self._arrived.items() if k[0] != model_height}

    def update(self, state: ChainState) -> None:
        """A block was committed, giving ``state``: when its model is new, remember who
        contributed to the previous one and drop contributions to older models."""
        model_height = state.learning.model_height
        if model_height == self._model_height:
            return
        self.last_contributors = set(self._by_height.get(self._model_height, {}))
        self._model_height = model_height
        self._by_height = {h: c for h, c in self._by_height.items() if h >= model_height}
        self._arrived = {k: t for k, t in self._arrived.items() if k[0] >= model_height}
