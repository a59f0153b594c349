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
  less than one sample. With ``task.appraisal = first_order`` the gain is its first-order
  estimate, ``-g . d_i / n`` with ``g`` the loss's gradient at ``w + S``: one forward and one
  backward pass in all, instead of one loss per contribution.

What was tried first, and why not (bench/README.md, "Incentives"): leaving each contribution out
and re-averaging the rest gives an untrained copy a clearly non-zero value (dropping it enlarges
the others' mean step), and near convergence every measure of a single update's direction turns
negative for honest parties too (at FedAvg's fixed point the updates sum to about zero, so each is
opposed to the rest), hence gains are floored at 0 and only the score gap counts as harm.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence

import torch

from learnchain.ml.aggregate import Contribution, compute_clip_scales, compute_update_norms
from learnchain.ml.codec import StateDict
from learnchain.ml.kept_updates import (
    compute_kept_dots,
    compute_kept_gram,
    compute_kept_in_slice,
    iter_kept_aggregate,
    read_all_kept,
)
from learnchain.ml.weights_file import (
    StateSource,
    TensorSource,
    WeightsLayout,
    collect_state,
    iter_source,
)

Materialize = Callable[[Iterable[torch.Tensor]], TensorSource]


def compute_values_of(
    base: TensorSource,
    named: Sequence[TensorSource],
    aggregated: int,
    loss: Callable[[TensorSource], float],
    score: Callable[[TensorSource], float],
    harm_margin: float,
    layout: WeightsLayout,
    materialize: Materialize,
    scores: Sequence[float] | None = None,
    norms: torch.Tensor | None = None,
    reputation: bool = False,
    arrival: Sequence[float] | None = None,
    duplicate_margin: float = 0.0,
    gradient: Callable[[TensorSource], TensorSource] | None = None,
) -> list[float]:
    """Each of the first ``aggregated`` sources' value (see the module), then each other
    (screened-out) one's: harmful by the same test, else 0. With ``reputation``, those values
    followed by each source's reputation value (§3.9), made in the same pass, as a precommit
    carries them on a chain that keeps reputation: its gain not floored at 0, and for a
    screened-out source that is not harmful, its gain had it been added to the aggregate.
    With ``arrival`` (when each source reached this validator) and a ``duplicate_margin``, a
    copy of a source that arrived earlier (``compute_copies``) is worth 0 in every list. Slice
    by slice: the aggregate of every clipped update is made once (``materialize``: slices in
    ``layout`` order to a source), and each contribution's term is taken out of it slice by
    slice for its loss. ``scores`` and ``norms`` (each source's own score, and its update's
    norm from ``base``) when they are already known (computed as the contributions arrived).
    With ``gradient`` (the loss's gradient at some weights), each gain is its first-order
    estimate, ``-g . term`` with ``g`` the gradient at the aggregate (``compute_first_order_dots``):
    one forward and one backward pass in place of one loss per contribution."""
    if not aggregated:
        return []
    if scores is None:
        scores = [score(source) for source in named]
    median_score = statistics.median(scores)
    if norms is None:
        norms = compute_update_norms(base, named, layout)

    # the Gram matrix of the updates, made while the aggregate reads them (copies, below)
    gram = torch.zeros((len(named), len(named)), dtype=torch.float64)
    finding_copies = arrival is not None and duplicate_margin > 0

    def finish(values: list[float]) -> list[float]:
        """``values`` with every copy's set to 0 (one list, or the settlement values then the
        reputation values)."""
        if arrival is None or not finding_copies:
            return values
        copies = compute_copies(gram, arrival, duplicate_margin)
        return [0.0 if copies[i % len(named)] else value for i, value in enumerate(values)]

    # each one's harm (its score gap), or None; the current model sent back moves nothing and
    # is never harmful, however far below the others the model scores
    harms = [
        gap if float(norm) > 0 and (gap := median_score - own) > harm_margin else None
        for norm, own in zip(norms, scores, strict=True)
    ]
    scales = compute_clip_scales(norms[:aggregated])
    share = 1.0 / aggregated
    sources = named[:aggregated]

    # A value is this validator's own measurement (the chain takes the median of them), so it is
    # computed in the model's precision: half the memory traffic of float64 on float32 models.
    def read_base(name: str, start: int, stop: int) -> torch.Tensor:
        base_slice = base.read_flat(name, start, stop)
        return base_slice if base_slice.is_floating_point() else base_slice.to(torch.float64)

    def clip(i: int, read: torch.Tensor, base_slice: torch.Tensor) -> torch.Tensor:
        return (read.to(base_slice.dtype) - base_slice) * float(scales[i])

    def clipped_delta(
        i: int, name: str, start: int, stop: int, base_slice: torch.Tensor
    ) -> torch.Tensor:
        if kept is None:
            return clip(i, sources[i].read_flat(name, start, stop), base_slice)
        local, values = compute_kept_in_slice(*kept[i][name], start, stop)
        delta = torch.zeros_like(base_slice)
        delta[local] = values.to(base_slice.dtype) * float(scales[i])
        return delta

    def iter_with_all() -> Iterable[torch.Tensor]:
        for name, start, stop in layout.iter_slices():
            base_slice = read_base(name, start, stop)
            # each source read once a slice: the aggregate's terms, and the updates' distances
            read = [s.read_flat(name, start, stop) for s in (named if finding_copies else sources)]
            step = torch.zeros_like(base_slice)
            for i in range(aggregated):
                step += clip(i, read[i], base_slice)
            if finding_copies:
                gram.add_(compute_slice_gram(read, base_slice))
            yield (base_slice + share * step).to(layout.specs[name].dtype)

    # a sparse codec's updates (top-k): the aggregate, the Gram matrix and the dot products from
    # their kept values alone, not from every value of every update decoded
    kept = read_all_kept(base, named, layout)
    if kept is None:
        with_all_source = materialize(iter_with_all())
    else:
        weights = [share * float(scales[i]) for i in range(aggregated)]
        with_all_source = materialize(iter_kept_aggregate(base, kept[:aggregated], weights, layout))
        if finding_copies:
            gram.copy_(compute_kept_gram(kept, layout))
    if gradient is None:
        with_all = loss(with_all_source)
    elif kept is None:  # first order: the gradient at the aggregate, one dot product per update
        dots, step_dot = compute_first_order_dots(
            base,
            named if reputation else sources,
            with_all_source,
            gradient(with_all_source),
            layout,
        )
    else:
        dots = compute_kept_dots(gradient(with_all_source), kept, layout)
        step_dot = sum(weights[i] * dots[i] for i in range(aggregated))
    values = []
    for i, harm in enumerate(harms[:aggregated]):
        if harm is not None:
            values.append(-harm)
            continue
        if not float(norms[i]) > 0:  # no step, no gain
            values.append(0.0)
            continue
        if gradient is not None:
            gain = -share * float(scales[i]) * dots[i]  # loss(w + S - c_i / n) - loss(w + S)
        else:

            def without_term(
                name: str, start: int, stop: int, base_slice: torch.Tensor, i: int = i
            ) -> torch.Tensor:
                return -share * clipped_delta(i, name, start, stop, base_slice)

            gain = loss(_Shifted(with_all_source, read_base, without_term)) - with_all
        values.append(gain if reputation else max(gain, 0.0))
    if not reputation:
        return finish(values + [0.0 if harm is None else -harm for harm in harms[aggregated:]])
    median_norm = float(norms[:aggregated].median())
    for j, harm in enumerate(harms[aggregated:], start=aggregated):
        if harm is not None:
            values.append(-harm)
            continue
        if not float(norms[j]) > 0:
            values.append(0.0)
            continue
        scale = min(1.0, median_norm / float(norms[j]))
        if gradient is not None:  # loss(w + S) - loss(w + S + (scale d_j - S) / (n + 1))
            values.append(-(scale * dots[j] - step_dot) / (aggregated + 1))
            continue

        def with_term(
            name: str,
            start: int,
            stop: int,
            base_slice: torch.Tensor,
            j: int = j,
            scale: float = scale,
        ) -> torch.Tensor:
            update = named[j].read_flat(name, start, stop).to(base_slice.dtype) - base_slice
            step = with_all_source.read_flat(name, start, stop).to(base_slice.dtype) - base_slice
            return (update * scale - step) / (aggregated + 1)

        values.append(with_all - loss(_Shifted(with_all_source, read_base, with_term)))
    settlement = [
        -harm if harm is not None else (max(value, 0.0) if i < aggregated else 0.0)
        for i, (value, harm) in enumerate(zip(values, harms, strict=True))
    ]
    return finish(settlement + values)


def compute_first_order_dots(
    base: TensorSource,
    named: Sequence[TensorSource],
    aggregate: TensorSource,
    gradient: TensorSource,
    layout: WeightsLayout,
) -> tuple[list[float], float]:
    """The dot product of ``gradient`` with each source's update from ``base``, and with the
    aggregate's step from it, slice by slice, in float32 at least, summed in float64."""
    dots = [0.0] * len(named)
    step_dot = 0.0
    for name, start, stop in layout.iter_slices():
        base_slice = base.read_flat(name, start, stop)
        dtype = torch.promote_types(base_slice.dtype, torch.float32)
        base_slice = base_slice.to(dtype)
        grad = gradient.read_flat(name, start, stop).to(dtype)
        for i, source in enumerate(named):
            dots[i] += float(
                torch.dot(grad, source.read_flat(name, start, stop).to(dtype) - base_slice)
            )
        step_dot += float(
            torch.dot(grad, aggregate.read_flat(name, start, stop).to(dtype) - base_slice)
        )
    return dots, step_dot


def compute_slice_gram(read: Sequence[torch.Tensor], base_slice: torch.Tensor) -> torch.Tensor:
    """The Gram matrix of one slice of the updates ``read`` less ``base_slice``, computed in
    float32 at least (the model's precision when higher) and returned as float64 to sum over
    slices. From float64 copies of every update it took 0.79 CPU-s at 25 M parameters and eight
    updates, against 0.21; a copy is told by distances of a tenth of a norm, far above
    float32's rounding."""
    dtype = torch.promote_types(base_slice.dtype, torch.float32)
    deltas = torch.stack([r.to(dtype) for r in read]) - base_slice.to(dtype)
    return (deltas @ deltas.T).to(torch.float64)


def compute_update_gram(
    base: TensorSource, named: Sequence[TensorSource], layout: WeightsLayout
) -> torch.Tensor:
    """The Gram matrix of the sources' updates from ``base``, slice by slice."""
    gram = torch.zeros((len(named), len(named)), dtype=torch.float64)
    for name, start, stop in layout.iter_slices():
        read = [source.read_flat(name, start, stop) for source in named]
        gram += compute_slice_gram(read, base.read_flat(name, start, stop))
    return gram


def compute_copies(gram: torch.Tensor, arrival: Sequence[float], margin: float) -> list[bool]:
    """Which sources are copies, from the Gram matrix of their updates: an update within
    ``margin`` of the larger norm of an update that arrived before it (``arrival``; ties by
    position). A free rider can only copy what it received, so the original reaches the other
    validators first (bench/README.md, "Free riders")."""
    squares = gram.diagonal()
    norms = squares.sqrt()
    distances = (squares.unsqueeze(0) + squares.unsqueeze(1) - 2 * gram).clamp_min(0).sqrt()
    order = sorted(range(len(arrival)), key=lambda i: (arrival[i], i))
    copies = [False] * len(arrival)
    for rank, j in enumerate(order):
        for i in order[:rank]:
            larger = max(float(norms[i]), float(norms[j]))
            if larger > 0 and float(distances[i, j]) <= margin * larger:
                copies[j] = True
                break
    return copies


class _Shifted:
    """The aggregate of every clipped update with one contribution's term taken out or put in
    (``term``: the slice's shift), read slice by slice (the ``TensorSource`` a loss is measured
    on)."""

    def __init__(
        self,
        with_all: TensorSource,
        read_base: Callable[[str, int, int], torch.Tensor],
        term: Callable[[str, int, int, torch.Tensor], torch.Tensor],
    ) -> None:
        self._with_all, self._read_base, self._term = with_all, read_base, term

    def read_flat(self, name: str, start: int, stop: int) -> torch.Tensor:
        with_all = self._with_all.read_flat(name, start, stop)
        shift = self._term(name, start, stop, self._read_base(name, start, stop))
        return (with_all.to(shift.dtype) + shift).to(with_all.dtype)


def compute_contribution_values(
    global_state: StateDict,
    contributions: list[Contribution],
    loss: Callable[[StateDict], float],
    score: Callable[[StateDict], float],
    harm_margin: float,
    screened: Sequence[Contribution] = (),
    reputation: bool = False,
    arrival: Sequence[float] | None = None,
    duplicate_margin: float = 0.0,
    gradient: Callable[[StateDict], StateDict] | None = None,
) -> list[float]:
    """Each contribution's value (see the module), in the order given, then each screened-out
    one's: harmful by the same test, else 0 (it is in no aggregate, so it has no gain). The
    harm test's median is over every contribution named, aggregated or screened out, as if the
    proposer had screened none; with ``gradient``, gains to first order. For state dicts in
    memory (``compute_values_of``)."""
    layout = WeightsLayout.of_state(global_state)

    def to_state(source: TensorSource) -> StateDict:
        return collect_state(layout, iter_source(source, layout))

    def gradient_of(source: TensorSource) -> TensorSource:
        assert gradient is not None
        return StateSource(gradient(to_state(source)))

    return compute_values_of(
        StateSource(global_state),
        [StateSource(c.state) for c in [*contributions, *screened]],
        len(contributions),
        lambda source: loss(to_state(source)),
        lambda source: score(to_state(source)),
        harm_margin,
        layout,
        lambda slices: StateSource(collect_state(layout, slices)),
        reputation=reputation,
        arrival=arrival,
        duplicate_margin=duplicate_margin,
        gradient=None if gradient is None else gradient_of,
    )
