"""Weights a node could not use, said once and counted.

A contribution or a proposed model that is too large for the chain's limit, does not fit the
task's model, or cannot be had from any peer costs a learning round silently unless the node
says so: the chain goes on (a plain block, a rejected proposal) and nobody learns why. Each kind
of problem is logged once at warning level (then at debug, so a chain that keeps meeting it does
not flood the log) and counted in ``learnchain_learning_unusable_weights_total{what,reason}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("learnchain.weights")

# what could not be used, and why
WHATS = ("contribution", "proposal", "model")
REASONS = ("too_large", "bad_weights", "unavailable")


class WeightsProblems:
    """Reports weights this node could not use."""

    def __init__(self, count: Callable[[str, str], None] = lambda _what, _reason: None) -> None:
        self._count = count
        self._said: set[tuple[str, str]] = set()

    def report(self, what: str, reason: str, detail: str) -> None:
        """``what`` (a contribution, a proposal, the chain's model) was unusable for ``reason``;
        ``detail`` says which and how."""
        self._count(what, reason)
        first = (what, reason) not in self._said
        self._said.add((what, reason))
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "%s unusable (%s): %s%s",
            what,
            reason.replace("_", " "),
            detail,
            "" if not first else " (said once; counted in learnchain_learning_unusable_weights)",
        )
