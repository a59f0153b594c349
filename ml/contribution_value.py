"""What each contribution is worth to an aggregate: leave-one-out on a validator's own data.

A contribution's value is the score of the aggregate of all contributions minus the score of the
aggregate with that one left out, both aggregated the same way (no screening: these are the
contributions a block used). Useful updates have positive values; an untrained copy of the model
changes almost nothing; a poisoned update has a negative value, since the aggregate is better
without it. The chain settles rewards and deposits on the validators' median values
(consensus/incentives.py).
"""

from __future__ import annotations

from collections.abc import Callable

from learnchain.ml.aggregate import AggregationRule, Contribution, aggregate_contributions
from learnchain.ml.codec import StateDict


def compute_leave_one_out_values(
    global_state: StateDict,
    contributions: list[Contribution],
    score: Callable[[StateDict], float],
    rule: str | AggregationRule,
    momentum: float = 0.0,
    previous_global: StateDict | None = None,
) -> list[float]:
    """Each contribution's value, in the order given."""

    def aggregate(chosen: list[Contribution]) -> StateDict:
        state, _ = aggregate_contributions(
            global_state, chosen, rule, momentum=momentum, previous_global=previous_global
        )
        return state

    full = score(aggregate(contributions))
    return [
        full - score(aggregate(contributions[:i] + contributions[i + 1 :]))
        for i in range(len(contributions))
    ]
