"""How long this validator's learning work on a model update may take: long enough for its model.

The genesis ``verdict_timeout`` (30 s) and the propose timeout (3 s) suit models of megabytes.
Judging a proposal of a large model reads it and, in aggregate mode, every contribution it lists
(fetched, hash-checked, re-aggregated, appraised), and a proposer aggregates for about as long:
times in proportion to the model. Each validator sets its own wait (``Engine.set_learning_budget``,
a local choice of timeout: safety is untouched) to the larger of an estimate from the model's
size, before it has timed any such work, and a multiple of the slowest of its recent verdicts and
aggregations.
"""

from __future__ import annotations

from collections import deque

MEASURED_FACTOR = 3.0  # learning work may take this many times the slowest recent one
RECENT_WORK = 5
# Before any work was timed: bytes per second read while judging or aggregating (fetching,
# hashing, aggregating and scoring read the proposal and the contributions a few times each).
ASSUMED_BYTES_PER_SECOND = 50e6


class LearningBudget:
    """This node's learning budget from its model's size and its recent work."""

    def __init__(self, model_bytes: int) -> None:
        self.model_bytes = model_bytes
        self._recent: deque[float] = deque(maxlen=RECENT_WORK)

    def observe(self, seconds: float) -> None:
        """A verdict (or an aggregation) took ``seconds``."""
        self._recent.append(seconds)

    def compute_ms(self, contributions: int) -> int:
        """Milliseconds a verdict on (or the aggregation of) ``contributions`` may take."""
        estimate = (contributions + 2) * self.model_bytes / ASSUMED_BYTES_PER_SECOND
        measured = MEASURED_FACTOR * max(self._recent, default=0.0)
        return round(1000 * max(estimate, measured))
