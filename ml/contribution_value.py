"""What a validator finds each contribution of a block worth, on its own data (§3.5).

One number per contribution, which the validator signs into its precommit:

- **harmful** (negative): the contribution's own model scores more than ``harm_margin`` below the
  median of the block's contributions on this validator's data; the number is minus that gap. A
  label-flipping or random contribution is far below every honest one; an honest party with
  unusual data is usually within the margin on most validators' data, and the chain needs
  validators holding more than its threshold of stake to agree before a deposit is forfeited.
- otherwise its **gain** (0 or more): how much lower the aggregate's loss is with the
  contribution's term than without it, ``loss(w + S - d_i / n) - loss(w + S)``, where ``S`` is
  the mean of the clipped updates ``d_j`` (clipped to the median norm, as the aggregate clips
  them). An untrained copy of the model has ``d_i = 0`` and is worth exactly 0 (and is never
  harmful: it moves nothing, however low the current model scores). Loss, not the
  task's metric: one contribution's term moves the accuracy on a vote set of a hundred samples by
  less than one sample.

What was tried first, and why not (bench/README.md, "Incentives"): leaving each contribution out
and re-averaging the rest gives an untrained copy a clearly non-zero value (dropping it enlarges
the others' mean step), and near convergence every measure of a single update's direction turns
negative for honest parties too (at FedAvg's fixed point the updates sum to about zero, so each is
opposed to the rest), hence gains are floored at 0 and only the score gap counts as harm.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

from learnchain.ml.aggregate import (
    Contribution,
    compute_clipped_deltas,
    compute_flat,
    compute_unflat,
)
from learnchain.ml.codec import StateDict


def compute_contribution_values(
    global_state: StateDict,
    contributions: list[Contribution],
    loss: Callable[[StateDict], float],
    score: Callable[[StateDict], float],
    harm_margin: float,
    screened: Sequence[Contribution] = (),
) -> list[float]:
    """Each contribution's value (see the module), in the order given, then each screened-out
    one's: harmful by the same test, else 0 (it is in no aggregate, so it has no gain). The
    harm test's median is over every contribution named, aggregated or screened out, as if the
    proposer had screened none."""
    if not contributions:
        return []
    named = [*contributions, *screened]
    scores = [score(c.state) for c in named]
    median_score = statistics.median(scores)
    _, base = compute_flat(global_state)
    flats = [compute_flat(c.state)[1] for c in named]
    # each one's harm (its score gap), or None; the current model sent back moves nothing and
    # is never harmful, however far below the others the model scores
    harms = [
        gap if bool((flat - base).any()) and (gap := median_score - own) > harm_margin else None
        for flat, own in zip(flats, scores, strict=True)
    ]
    deltas = compute_clipped_deltas(base, flats[: len(contributions)])
    share = 1.0 / len(contributions)
    step = share * deltas.sum(dim=0)
    with_all = loss(compute_unflat(base + step, global_state))
    values = []
    for delta, harm in zip(deltas, harms[: len(contributions)], strict=True):
        if harm is not None:
            values.append(-harm)
        elif not bool(delta.any()):  # no step, no gain
            values.append(0.0)
        else:
            without = loss(compute_unflat(base + step - share * delta, global_state))
            values.append(max(without - with_all, 0.0))
    return values + [0.0 if harm is None else -harm for harm in harms[len(contributions) :]]
