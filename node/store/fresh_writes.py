"""Weights this node's learner wrote lately, which a prune must not delete yet.

A contribution is written before anything else knows of it: trained ahead from a proposal (an
early contribution) or finishing as a block commits, its file is in the store before the
contribution pool lists it. A prune keeps what was written since the previous prune began; by
the next, anything still needed is in use by name (the pool, the learner), and anything else is
stale. Checked live, at each deletion, so a file adopted while a prune runs is kept too (and
by the next prune).
"""

from __future__ import annotations

from learnchain.consensus.types import Hash


class FreshWrites:
    """Hashes written since the previous prune began (added from the learner's thread)."""

    def __init__(self) -> None:
        self._epochs: list[set[Hash]] = [set(), set()]

    def add(self, weights_hash: Hash) -> None:
        """Record weights about to be adopted into the store."""
        self._epochs[-1].add(weights_hash)

    def rotate(self) -> None:
        """A prune begins: forget what was written before the previous one began."""
        self._epochs = [self._epochs[-1], set()]

    def __contains__(self, weights_hash: object) -> bool:
        return any(weights_hash in epoch for epoch in self._epochs)
