"""A block's aggregate of top-k updates is made from their kept values alone, and is to the bit
the aggregate of the same updates decoded whole (§3.7): every validator that computes the
proposed model itself finds the block's model hash, whichever way it reads the updates."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learnchain.ml.aggregate import (
    ClippedMean,
    CoordinateMedian,
    ListedSource,
    compute_update_norms,
    get_aggregation_rule,
    is_moved_columns_rule,
    is_weighted_sum,
    iter_aggregate,
)
from learnchain.ml.config import Aggregation
from learnchain.ml.error_feedback import ErrorFeedback
from learnchain.ml.kept_updates import compute_kept_gram, read_all_kept
from learnchain.ml.update_codec import DecodedContribution, parse_codec
from learnchain.ml.weights_file import (
    SLICE_ELEMENTS,
    StateSource,
    TensorSource,
    WeightsLayout,
    collect_state,
    iter_source,
)

State = dict[str, torch.Tensor]


def make_base(seed: int) -> State:
    """A model with a tensor longer than one slice, a vector and a bfloat16 tensor."""
    generator = torch.Generator().manual_seed(seed)
    rows = SLICE_ELEMENTS // 400 + 7  # crosses a slice boundary
    return {
        "a.weight": torch.randn(rows, 400, generator=generator),
        "a.bias": torch.randn(400, generator=generator),
        "b.weight": torch.randn(10, 400, generator=generator).to(torch.bfloat16),
    }


def make_updates(
    base_source: StateSource, base: State, codec: str, sizes: list[float], seed: int
) -> list[DecodedContribution]:
    """One encoded update per size, of that order of magnitude, decoded against the base."""
    generator = torch.Generator().manual_seed(seed + 1)
    layout = WeightsLayout.of_state(base)
    update_codec = parse_codec(codec)
    made = []
    for size in sizes:
        trained = {
            k: (v.float() + size * torch.randn(v.shape, generator=generator)).to(v.dtype)
            for k, v in base.items()
        }
        encoded = ErrorFeedback(update_codec).encode(StateSource(trained), base_source, layout)
        made.append(DecodedContribution(base_source, StateSource(encoded), update_codec, layout))
    return made


def aggregate_slices(
    base_source: TensorSource,
    sources: list[TensorSource],
    samples: list[int],
    rule: str,
    layout: WeightsLayout,
    norms: torch.Tensor,
) -> list[torch.Tensor]:
    """The aggregate's slices, with the updates' ``norms`` as a node measured them on arrival."""
    pairs = zip(sources, samples, strict=True)
    listed = [ListedSource(str(i), source, n) for i, (source, n) in enumerate(pairs)]
    previous = StateSource({k: v.float() - 1e-3 for k, v in make_base(0).items()})
    slices = iter_aggregate(
        base_source, listed, get_aggregation_rule(rule), layout, 0.7, previous, norms, 0.9
    )
    return list(slices)


def decoded_whole(source: TensorSource, layout: WeightsLayout) -> StateSource:
    """The same weights as a plain state dict: read through every value."""
    return StateSource(collect_state(layout, iter_source(source, layout)))


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    sizes=st.lists(st.sampled_from([1e-4, 1e-3, 1e-2, 1.0]), min_size=1, max_size=6),
    samples=st.lists(st.integers(1, 500), min_size=6, max_size=6),
    fraction=st.sampled_from(["0.01", "0.05", "0.3"]),
    rule=st.sampled_from(
        [Aggregation.CLIPPED_MEAN, Aggregation.SOFT_WINSORIZED_MEAN, Aggregation.MEDIAN]
    ),
)
def test_the_rules_combination_of_kept_values_is_the_dense_one_to_the_bit(
    seed: int, sizes: list[float], samples: list[int], fraction: str, rule: str
) -> None:
    """Clipped to the median norm, weighted by capped sample counts (the clipped mean), cut to
    the others' range (the winsorized means) or the median, with the server step."""
    base = make_base(seed)
    base_source = StateSource(base)
    layout = WeightsLayout.of_state(base)
    sparse = make_updates(base_source, base, f"topk:{fraction}", sizes, seed)
    assert read_all_kept(base_source, sparse, layout) is not None
    dense: list[TensorSource] = [decoded_whole(s, layout) for s in sparse]
    counts = samples[: len(sizes)]
    norms = compute_update_norms(base_source, sparse, layout)
    from_kept = aggregate_slices(base_source, list(sparse), counts, rule, layout, norms)
    from_all = aggregate_slices(base_source, dense, counts, rule, layout, norms)
    assert len(from_kept) == len(from_all) == len(list(layout.iter_slices()))
    for a, b in zip(from_kept, from_all, strict=True):
        assert torch.equal(a, b)


def test_a_top_k_updates_norm_from_its_kept_values_is_the_same_whatever_it_is_listed_with() -> None:
    """Equal to the norm of the update decoded whole, to float64's rounding (the squares are
    summed in another order), and the same alone, among others, or beside a dense source."""
    base = make_base(11)
    base_source = StateSource(base)
    layout = WeightsLayout.of_state(base)
    sparse = make_updates(base_source, base, "topk:0.05", [1e-3, 1e-2, 1.0], 11)
    dense: list[TensorSource] = [decoded_whole(s, layout) for s in sparse]
    from_kept = compute_update_norms(base_source, sparse, layout)
    assert torch.allclose(from_kept, compute_update_norms(base_source, dense, layout), rtol=1e-12)
    alone = torch.cat([compute_update_norms(base_source, [s], layout) for s in sparse])
    mixed = compute_update_norms(base_source, [sparse[0], dense[1], sparse[2]], layout)
    assert torch.equal(alone, from_kept)
    assert torch.equal(mixed[[0, 2]], from_kept[[0, 2]])
    assert torch.equal(mixed[1], compute_update_norms(base_source, [dense[1]], layout)[0])


def test_updates_decoded_against_another_model_are_not_read_as_kept_values() -> None:
    base = make_base(3)
    base_source = StateSource(base)
    layout = WeightsLayout.of_state(base)
    updates = make_updates(base_source, base, "topk:0.01", [1e-3, 1e-3], 3)
    assert read_all_kept(StateSource(base), updates, layout) is None
    assert read_all_kept(base_source, [*updates, decoded_whole(updates[0], layout)], layout) is None
    dense_codec = make_updates(base_source, base, "int8", [1e-3], 3)
    assert read_all_kept(base_source, dense_codec, layout) is None


class DoubledMean(ClippedMean):
    """A user's rule that extends the clipped mean but combines its own way."""

    def combine(self, deltas: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        return 2 * super().combine(deltas, samples)


class HalvedMedian(CoordinateMedian):
    """A user's rule that extends the median but combines its own way."""

    def combine(self, deltas: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        return super().combine(deltas, samples) / 2


def test_only_the_built_in_combinations_are_made_from_kept_values() -> None:
    """The clipped mean's weighted sum, or the built-in rules that combine each coordinate from
    its own column alone; a user's rule that combines its own way is read whole."""
    assert is_weighted_sum(get_aggregation_rule(Aggregation.CLIPPED_MEAN))
    assert is_weighted_sum(get_aggregation_rule(Aggregation.SCREENED_MEAN))
    for rule in (Aggregation.WINSORIZED_MEAN, Aggregation.TRIMMED_MEAN, Aggregation.MEDIAN):
        assert not is_weighted_sum(get_aggregation_rule(rule))
    assert not is_weighted_sum(DoubledMean())
    for rule in (
        Aggregation.WINSORIZED_MEAN,
        Aggregation.SOFT_WINSORIZED_MEAN,
        Aggregation.MEDIAN,
    ):
        assert is_moved_columns_rule(get_aggregation_rule(rule))
    for rule in (Aggregation.CLIPPED_MEAN, Aggregation.TRIMMED_MEAN):
        assert not is_moved_columns_rule(get_aggregation_rule(rule))
    assert not is_moved_columns_rule(HalvedMedian())


@pytest.mark.parametrize(
    "rule",
    [
        Aggregation.WINSORIZED_MEAN,
        Aggregation.SOFT_WINSORIZED_MEAN,
        Aggregation.MEDIAN,
        Aggregation.TRIMMED_MEAN,
    ],
)
def test_other_rules_combine_top_k_updates_as_decoded_whole(rule: str) -> None:
    base = make_base(5)
    base_source = StateSource(base)
    layout = WeightsLayout.of_state(base)
    sparse = make_updates(base_source, base, "topk:0.3", [1e-3, 1e-2, 1e-3, 1e-3], 5)
    dense: list[TensorSource] = [decoded_whole(s, layout) for s in sparse]
    norms = compute_update_norms(base_source, sparse, layout)
    counts = [10, 20, 30, 40]
    from_sparse = aggregate_slices(base_source, list(sparse), counts, rule, layout, norms)
    from_dense = aggregate_slices(base_source, dense, counts, rule, layout, norms)
    for a, b in zip(from_sparse, from_dense, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("block", [7, 1 << 18])
def test_the_gram_matrix_of_kept_values_is_that_of_the_updates_decoded_whole(
    monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    """Block by block over the positions any update kept, as over every value of the updates
    laid out whole."""
    import learnchain.ml.kept_updates as kept_updates

    monkeypatch.setattr(kept_updates, "GRAM_BLOCK", block)
    base = {k: v.float() for k, v in make_base(7).items()}
    base_source = StateSource(base)
    layout = WeightsLayout.of_state(base)
    sparse = make_updates(base_source, base, "topk:0.05", [1e-3, 1e-2, 1e-3, 1.0], 7)
    kept = read_all_kept(base_source, sparse, layout)
    assert kept is not None
    rows = torch.stack(
        [
            torch.cat(
                [
                    torch.zeros(spec.numel, dtype=torch.float64).index_put_(
                        (updates[name][0],), updates[name][1].to(torch.float64)
                    )
                    for name, spec in layout.specs.items()
                ]
            )
            for updates in kept
        ]
    )
    expected = rows @ rows.T
    assert torch.allclose(compute_kept_gram(kept, layout), expected, rtol=1e-5, atol=1e-9)
