"""How long this validator may take to judge a proposal: long enough for its model.

The genesis ``verdict_timeout`` (30 s) suits models of megabytes. Judging a proposal of a large
model reads it and, in aggregate mode, every contribution it lists (fetched, hash-checked,
re-aggregated, appraised), which takes a time in proportion to the model. Each validator sets its
own wait (``Engine.set_verdict_budget``, a local choice of timeout: safety is untouched) to the
larger of an estimate from the model's size, before it has timed any verdict, and a multiple of
the slowest of its recent verdicts.
"""

from __future__ import annotations

from collections import deque

MEASURED_FACTOR = 3.0  # a verdict may take this many times the slowest recent one
RECENT_VERDICTS = 5
# Before a verdict was timed: bytes per second read while judging (fetching, hashing,
# aggregating and scoring read the proposal and the contributions a few times each).
ASSUMED_BYTES_PER_SECOND = 50e6


class VerdictBudget:
    """This node's verdict budget from its model's size and its recent verdicts."""

    def __init__(self, model_bytes: int) -> None:
        self.model_bytes = model_bytes
        self._recent: deque[float] = deque(maxlen=RECENT_VERDICTS)

    def observe(self, seconds: float) -> None:
        """A verdict took ``seconds``."""
        self._recent.append(seconds)

    def compute_ms(self, contributions: int) -> int:
        """Milliseconds a verdict on a proposal listing ``contributions`` may take."""
        estimate = (contributions + 2) * self.model_bytes / ASSUMED_BYTES_PER_SECOND
        measured = MEASURED_FACTOR * max(self._recent, default=0.0)
        return round(1000 * max(estimate, measured))
