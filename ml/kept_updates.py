"""Updates a sparse codec sent (top-k), worked on through their kept values alone.

A ``topk`` update keeps about 1 % of its values; decoding every update whole to add, multiply
or compare it reads and writes the other 99 % as zeros. The functions here take each update as
its kept (positions, values), tensor by tensor (``DecodedContribution.read_kept``), and do the
same arithmetic on those values only:

- ``iter_kept_combined``: the clipped weighted mean a block's aggregate is made of (§3.7), to
  the bit what the dense computation in ``ml/aggregate.py`` gives, so that every validator that
  computes the proposed model itself finds the block's model hash;
- ``iter_kept_columns_combined``: the same for a coordinate-wise robust rule (the winsorized
  means, the median), over the columns some update moved;
- ``compute_kept_norms``: the updates' norms the clipping divides by, equal to the dense ones to
  float64's rounding (not to the bit: the squares are summed in another order), and computed
  this way by every node of a chain with a sparse codec;
- ``iter_kept_aggregate``, ``compute_kept_gram``, ``compute_kept_dots``: the appraisal's
  aggregate, the copies' Gram matrix and the first-order dot products (§3.5), which are each
  validator's own measurements and need no bit-exact agreement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from learnchain.ml.update_codec import DecodedContribution, compute_decoded_weights
from learnchain.ml.weights_file import TensorSource, WeightsLayout

Kept = dict[str, tuple[torch.Tensor, torch.Tensor]]  # tensor -> (positions, float32 values)


def read_kept_update(
    base: TensorSource, source: TensorSource, layout: WeightsLayout
) -> Kept | None:
    """``source``'s update from ``base`` as its kept values, tensor by tensor, when it is an
    update a sparse codec encoded, decoded against ``base`` itself
    (``DecodedContribution.read_kept``); else None."""
    if not isinstance(source, DecodedContribution) or source.base is not base:
        return None
    kept = {}
    for name in layout.names:
        pair = source.read_kept(name)
        if pair is None:
            return None
        kept[name] = pair
    return kept


def read_all_kept(
    base: TensorSource, named: Sequence[TensorSource], layout: WeightsLayout
) -> list[Kept] | None:
    """Every source's kept values (``read_kept_update``) when each has them; else None."""
    found = []
    for source in named:
        kept = read_kept_update(base, source, layout)
        if kept is None:
            return None
        found.append(kept)
    return found


def compute_kept_in_slice(
    positions: torch.Tensor, values: torch.Tensor, start: int, stop: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The kept (positions less ``start``, values) that fall in [start, stop): positions are
    sorted."""
    low = int(torch.searchsorted(positions, start))
    high = int(torch.searchsorted(positions, stop))
    return positions[low:high] - start, values[low:high]


def compute_kept_deltas(
    base_at: torch.Tensor, values: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """The update's kept ``values`` as the dense computation sees them, float64: the weights
    decoded at those positions (``compute_decoded_weights``) less the base there."""
    decoded = compute_decoded_weights(base_at, values, dtype)
    return decoded.to(torch.float64) - base_at.to(torch.float64)


def compute_kept_norms(
    base: TensorSource, kept: Sequence[Kept], layout: WeightsLayout
) -> torch.Tensor:
    """Each update's norm (float64) from its kept values (``compute_kept_deltas``)."""
    squares = torch.zeros(len(kept), dtype=torch.float64)
    for name, spec in layout.specs.items():
        raw = base.read_flat(name, 0, spec.numel)
        for i, updates in enumerate(kept):
            positions, values = updates[name]
            delta = compute_kept_deltas(raw[positions], values, spec.dtype)
            squares[i] += torch.dot(delta, delta)
    return squares.sqrt()


def iter_clipped_in_slice(
    raw: torch.Tensor,
    kept: Sequence[Kept],
    scales: torch.Tensor,
    name: str,
    start: int,
    stop: int,
    dtype: torch.dtype,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Each update's kept (positions less ``start``, float64 deltas times its ``scales``
    entry) in [start, stop) of tensor ``name``, whose base values there are ``raw``."""
    for updates, scale in zip(kept, scales, strict=True):
        local, values = compute_kept_in_slice(*updates[name], start, stop)
        delta = compute_kept_deltas(raw[local], values, dtype)
        delta *= scale
        yield local, delta


def iter_kept_combined(
    base: TensorSource,
    kept: Sequence[Kept],
    scales: torch.Tensor,
    row_weights: torch.Tensor,
    layout: WeightsLayout,
) -> Iterator[tuple[str, int, int, torch.Tensor, torch.Tensor]]:
    """(name, start, stop, base slice, combined step slice), float64, in ``layout``'s slices:
    the sum, in the updates' order, of each update clipped by its ``scales`` entry and weighted
    by its ``row_weights`` one. Each kept value goes through the operations the dense
    computation applies to it (``compute_kept_deltas``, times the scale, times the weight, added
    to the running sum), and a value
    that was not kept adds a zero there, which changes no sum: the result is the dense one to
    the bit."""
    for name, start, stop in layout.iter_slices():
        dtype = layout.specs[name].dtype
        raw = base.read_flat(name, start, stop)
        base_slice = raw.to(torch.float64)
        step = torch.zeros(stop - start, dtype=torch.float64)
        clipped = iter_clipped_in_slice(raw, kept, scales, name, start, stop, dtype)
        for (local, delta), weight in zip(clipped, row_weights, strict=True):
            step[local] += delta * weight
        yield name, start, stop, base_slice, step


def iter_kept_columns_combined(
    base: TensorSource,
    kept: Sequence[Kept],
    scales: torch.Tensor,
    combine: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    samples: torch.Tensor,
    layout: WeightsLayout,
) -> Iterator[tuple[str, int, int, torch.Tensor, torch.Tensor]]:
    """As ``iter_kept_combined``, for a rule whose ``combine`` gives each column the same result
    from the columns some update moved as from the whole slice, and a column of zeros zero
    (``is_moved_columns_rule``): it combines the clipped updates over the union of their kept
    positions in each slice, the other coordinates' step is zero, and the result is the dense
    one to the bit (a value that was not kept is a zero in either matrix)."""
    for name, start, stop in layout.iter_slices():
        dtype = layout.specs[name].dtype
        raw = base.read_flat(name, start, stop)
        base_slice = raw.to(torch.float64)
        step = torch.zeros(stop - start, dtype=torch.float64)
        rows = list(iter_clipped_in_slice(raw, kept, scales, name, start, stop, dtype))
        is_moved = torch.zeros(stop - start, dtype=torch.bool)
        for local, _ in rows:
            is_moved[local] = True
        moved = is_moved.nonzero().squeeze(1)  # in order
        if len(moved):
            column = torch.empty(stop - start, dtype=torch.long)
            column[moved] = torch.arange(len(moved))
            deltas = torch.zeros((len(kept), len(moved)), dtype=torch.float64)
            for row, (local, delta) in zip(deltas, rows, strict=True):
                row[column[local]] = delta
            step[moved] = combine(deltas, samples)
        yield name, start, stop, base_slice, step


def iter_kept_aggregate(
    base: TensorSource, kept: Sequence[Kept], weights: Sequence[float], layout: WeightsLayout
) -> Iterator[torch.Tensor]:
    """``base`` plus the ``weights``-weighted sum of the kept updates, in ``layout``'s slices
    (each cast to its tensor's dtype), built a tensor at a time."""
    current, tensor = "", torch.empty(0)
    for name, start, stop in layout.iter_slices():
        if name != current:
            spec = layout.specs[name]
            read = base.read_flat(name, 0, spec.numel)
            tensor = read.to(torch.promote_types(read.dtype, torch.float32), copy=True)
            for updates, weight in zip(kept, weights, strict=True):
                positions, values = updates[name]
                tensor.index_add_(0, positions, values.to(tensor.dtype), alpha=weight)
            tensor, current = tensor.to(spec.dtype), name
        yield tensor[start:stop]


GRAM_BLOCK = 1 << 18  # positions a block of the Gram matrix's dense rows covers


def compute_kept_gram(kept: Sequence[Kept], layout: WeightsLayout) -> torch.Tensor:
    """The Gram matrix of the kept updates (float64): over the positions any of them kept, in
    blocks, each update's values as one dense float32 row, and the rows' products."""
    gram = torch.zeros((len(kept), len(kept)), dtype=torch.float64)
    for name in layout.names:
        pairs = [updates[name] for updates in kept]
        union, inverse = torch.unique(torch.cat([p for p, _ in pairs]), return_inverse=True)
        # each update's positions are sorted, so its places in the union are too
        places = inverse.split([p.numel() for p, _ in pairs])
        for start in range(0, union.numel(), GRAM_BLOCK):
            stop = min(start + GRAM_BLOCK, union.numel())
            rows = torch.zeros((len(kept), stop - start), dtype=torch.float32)
            for row, at, (_, values) in zip(rows, places, pairs, strict=True):
                local, chosen = compute_kept_in_slice(at, values, start, stop)
                row[local] = chosen
            gram += (rows @ rows.T).to(torch.float64)
    return gram


def compute_kept_dots(
    gradient: TensorSource, kept: Sequence[Kept], layout: WeightsLayout
) -> list[float]:
    """The dot product of ``gradient`` with each kept update."""
    dots = [0.0] * len(kept)
    for name, spec in layout.specs.items():
        grad = gradient.read_flat(name, 0, spec.numel)
        grad = grad.to(torch.promote_types(grad.dtype, torch.float32))
        for i, updates in enumerate(kept):
            positions, values = updates[name]
            dots[i] += float(torch.dot(grad[positions], values.to(grad.dtype)))
    return dots
