"""The vote rule: approve weights not worse than the current model by more than a margin.

Statistics. Both models are scored on the same vote set, so the comparison is *paired*: for
each vote sample i, d_i is the candidate's improvement over the current model (accuracy: the
difference of the 0/1 correctness; loss: current loss minus candidate loss). With n samples,
the mean D estimates the improvement and SE = sd(d) / sqrt(n) its standard error (the paired
t statistic's denominator; pairing removes the between-sample variance, which dominates on small
vote sets). The rule approves when D + z * SE >= -margin, i.e. unless the vote set shows, at a
one-sided confidence set by ``z``, that the candidate is worse by more than ``margin``. On a tiny
vote set a real but small difference is within noise and is not held against the candidate;
a poisoned model is worse on most samples and is rejected even with a few dozen samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from learnchain.ml.config import Metric
from learnchain.ml.training import Evaluation


@dataclass(frozen=True)
class VoteDecision:
    """The verdict and the numbers behind it."""

    approve: bool
    improvement: float  # D: candidate minus current (accuracy) or current minus candidate (loss)
    standard_error: float
    samples: int
    score: float = math.nan  # the candidate's score on the vote set (``Learner.vote`` sets it)
    accuracy: float = math.nan  # and its accuracy and mean loss there, whatever the metric
    loss: float = math.nan


@dataclass(frozen=True)
class VoteRule:
    """The task's metric, margin and confidence."""

    metric: Metric = Metric.ACCURACY
    margin: float = 0.0
    confidence: float = 1.0

    def decide(self, candidate: Evaluation, current: Evaluation) -> VoteDecision:
        """Approve or reject ``candidate`` against ``current`` on the same vote samples."""
        if len(candidate.correct) != len(current.correct):
            raise ValueError("both models must be scored on the same vote set")
        if self.metric == Metric.ACCURACY:
            diffs = candidate.correct.astype(np.float64) - current.correct.astype(np.float64)
        else:
            diffs = current.losses.astype(np.float64) - candidate.losses.astype(np.float64)
        n = len(diffs)
        if n == 0:
            return VoteDecision(False, 0.0, math.inf, 0)
        if not np.isfinite(diffs).all():
            return VoteDecision(False, -math.inf, 0.0, n)
        mean = float(diffs.mean())
        se = float(diffs.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
        tolerance = 1e-12  # the bound can land exactly on -margin; do not let rounding decide
        approve = mean + self.confidence * se >= -self.margin - tolerance
        return VoteDecision(approve, mean, se, n)
