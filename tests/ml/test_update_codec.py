"""Contributions travel as encoded updates (task.codec): each codec's file has a layout of its
own, decodes the same slice by slice as whole, loses no more than its rounding, keeps the
largest values (topk), and only top-k's residue decays (tests/ml/test_error_feedback.py); a bad
codec name is one line."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learnchain.ml.error_feedback import ErrorFeedback
from learnchain.ml.errors import TaskError, WeightsError
from learnchain.ml.update_codec import (
    INT8_BLOCK,
    TOPK_FEEDBACK_DECAY,
    VECTOR_FLOOR,
    DecodedContribution,
    UpdateCodec,
    compute_largest_positions,
    open_contribution,
    parse_codec,
)
from learnchain.ml.weights_file import (
    StateSource,
    WeightsFile,
    WeightsLayout,
    iter_source,
    write_state,
    write_weights,
)
from tests.ml.states import make_state

CODECS = ("float32", "bfloat16", "int8", "topk:0.01", "topk:0.3")


def write_update(
    codec: UpdateCodec, trained: dict[str, torch.Tensor], base: dict[str, torch.Tensor], path: Path
) -> bytes:
    """A contribution's file as a node writes it (no residue yet); its hash."""
    layout = WeightsLayout.of_state(base)
    if codec.sends_weights:
        return write_state(path, trained)
    encoded = ErrorFeedback(codec).encode(StateSource(trained), StateSource(base), layout)
    update_layout = codec.compute_encoded_layout(layout)
    return write_weights(path, update_layout, iter_source(StateSource(encoded), update_layout))


def read_decoded(
    codec: UpdateCodec, path: Path, base: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    layout = WeightsLayout.of_state(base)
    source = open_contribution(path, StateSource(base), codec, layout, 1 << 30)
    return {n: source.read_flat(n, 0, s.numel).reshape(s.shape) for n, s in layout.specs.items()}


@pytest.mark.parametrize("name", CODECS)
def test_a_contribution_decodes_to_the_trained_weights_within_the_codecs_rounding(
    tmp_path: Path, name: str
) -> None:
    codec = parse_codec(name)
    base, trained = make_state(0), make_state(0)
    for tensor, step in zip(trained.values(), make_state(1, 0.01).values(), strict=True):
        tensor += step
    write_update(codec, trained, base, tmp_path / "c.safetensors")
    decoded = read_decoded(codec, tmp_path / "c.safetensors", base)
    for key, tensor in trained.items():
        update, sent = tensor - base[key], decoded[key] - base[key]
        if tensor.numel() == 0:
            continue
        if name == "float32":
            assert torch.equal(decoded[key], tensor)
        elif name == "bfloat16":
            assert torch.allclose(sent, update, rtol=1 / 128, atol=1e-6)
        elif name == "int8":
            peak = update.abs().max()  # a block's scale is at most the tensor's peak / 127
            assert (sent - update).abs().max() <= peak / 127 / 2 + 1e-6
        else:
            kept = math.ceil(codec.fraction * update.numel())  # type: ignore[attr-defined]
            if update.dim() == 1:  # a vector keeps at least VECTOR_FLOOR (all of a shorter one)
                kept = min(update.numel(), max(kept, VECTOR_FLOOR))
            assert int((sent != 0).sum()) <= kept
            largest = update.abs().flatten().topk(kept).indices
            mask = torch.zeros(update.numel(), dtype=torch.bool)
            mask[largest] = True
            # the kept values are the largest, to int8 rounding; the rest are zero
            flat_sent, flat_update = sent.flatten(), update.flatten()
            assert torch.equal(flat_sent[~mask], torch.zeros(int((~mask).sum())))
            peak = flat_update.abs().max()
            assert (flat_sent[mask] - flat_update[mask]).abs().max() <= peak / 127 / 2 + 1e-6


@pytest.mark.parametrize(
    ("name", "at_least"), [("bfloat16", 1.99), ("int8", 3.9), ("topk:0.01", 50)]
)
def test_encoded_contributions_are_that_many_times_smaller_than_float32(
    name: str, at_least: float
) -> None:
    layout = WeightsLayout.of_state(
        {"w": torch.zeros(512, 784), "v": torch.zeros(10, 512), "b": torch.zeros(512)}
    )
    encoded = parse_codec(name).compute_encoded_layout(layout)
    assert layout.file_size / encoded.file_size >= at_least


def test_top_k_packs_positions_as_narrow_as_each_tensor_allows_and_reaches_their_ends(
    tmp_path: Path,
) -> None:
    codec = parse_codec("topk:0.01")
    base = {"small": torch.zeros(2**15), "large": torch.zeros(2**15 + 1), "bias": torch.zeros(5)}
    trained = {name: tensor.clone() for name, tensor in base.items()}
    for tensor in trained.values():
        tensor[-1] = 5.0  # the largest change sits at the last position
    layout = WeightsLayout.of_state(base)
    specs = codec.compute_encoded_layout(layout).specs
    assert specs["topk.positions16"].dtype == torch.int16
    assert specs["topk.positions16"].shape == (328 + 5,)  # "small" and the whole of "bias"
    assert specs["topk.positions32"].dtype == torch.int32
    assert specs["topk.positions32"].shape == (328,)
    write_update(codec, trained, base, tmp_path / "c.safetensors")
    decoded = read_decoded(codec, tmp_path / "c.safetensors", base)
    for name, tensor in decoded.items():
        assert torch.equal(tensor, trained[name]), name


def test_top_k_keeps_at_least_a_floor_of_each_vector_and_the_fraction_of_each_matrix() -> None:
    codec = parse_codec("topk:0.01")
    layout = WeightsLayout.of_state(
        {
            "hidden.weight": torch.zeros(192, 64),
            "hidden.bias": torch.zeros(192),
            "output.bias": torch.zeros(10),
            "scale": torch.zeros(()),
        }
    )
    packing = codec.compute_packing(layout)  # type: ignore[attr-defined]
    assert packing["hidden.weight"].kept == math.ceil(0.01 * 192 * 64)  # a matrix: the fraction
    assert packing["hidden.bias"].kept == VECTOR_FLOOR  # more than 1 % of 192
    assert packing["output.bias"].kept == 10  # a short vector travels whole
    assert packing["scale"].kept == 1


def test_a_small_models_top_k_update_is_mostly_its_values() -> None:
    """Packed into four tensors, the header of a 58 KB model's update stays small."""
    layout = WeightsLayout.of_state(
        {
            "hidden.weight": torch.zeros(128, 64),
            "hidden.bias": torch.zeros(128),
            "output.weight": torch.zeros(10, 128),
            "output.bias": torch.zeros(10),
        }
    )
    assert layout.file_size / parse_codec("topk:0.01").compute_encoded_layout(layout).file_size > 50


@given(
    name=st.sampled_from(CODECS[1:]),  # float32: the weights file itself
    seed=st.integers(0, 1000),
    start=st.integers(0, 21000),
    length=st.integers(0, 9000),
)
@settings(max_examples=60, deadline=None)
def test_any_slice_of_a_decoded_contribution_is_that_slice_of_the_whole(
    name: str, seed: int, start: int, length: int
) -> None:
    codec = parse_codec(name)
    base = make_state(seed)
    trained = {k: v + 0.01 * torch.randn_like(v) for k, v in make_state(seed + 1).items()}
    layout = WeightsLayout.of_state(base)
    entries = ErrorFeedback(codec).encode(StateSource(trained), StateSource(base), layout)
    source = DecodedContribution(StateSource(base), StateSource(entries), codec, layout)
    numel = layout.specs["a.weight"].numel
    start = min(start, numel)
    stop = min(numel, start + length)
    whole = source.read_flat("a.weight", 0, numel)
    assert torch.equal(source.read_flat("a.weight", start, stop), whole[start:stop])
    assert numel > INT8_BLOCK  # the slices cross int8 blocks


def test_only_top_k_lets_its_residue_decay() -> None:
    assert parse_codec("topk:0.01").feedback_decay == TOPK_FEEDBACK_DECAY < 1
    assert parse_codec("int8").feedback_decay == parse_codec("bfloat16").feedback_decay == 1


def test_encoding_is_deterministic(tmp_path: Path) -> None:
    base = make_state(0)
    trained = {k: v + 0.01 * torch.randn_like(v) for k, v in make_state(0).items()}
    for name in CODECS:
        codec = parse_codec(name)
        first = write_update(codec, trained, base, tmp_path / "1.safetensors")
        second = write_update(codec, trained, base, tmp_path / "2.safetensors")
        assert first == second


def test_a_contribution_in_another_codecs_layout_does_not_open(tmp_path: Path) -> None:
    base = make_state(0)
    write_update(parse_codec("int8"), make_state(1), base, tmp_path / "c.safetensors")
    with pytest.raises(WeightsError, match="do not fit"):
        read_decoded(parse_codec("bfloat16"), tmp_path / "c.safetensors", base)
    with pytest.raises(WeightsError, match="do not fit"):
        WeightsFile(tmp_path / "c.safetensors", WeightsLayout.of_state(base), 1 << 30)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("zip", "task.codec must be one of float32, bfloat16, int8, topk:FRACTION, got 'zip'"),
        ("topk:0", "above 0 and below 1"),
        ("topk:1.5", "above 0 and below 1"),
        ("topk:many", "above 0 and below 1"),
    ],
)
def test_an_unknown_codec_or_a_bad_fraction_is_one_line(text: str, message: str) -> None:
    with pytest.raises(TaskError, match=message) as raised:
        parse_codec(text)
    assert "\n" not in str(raised.value)


def test_top_k_positions_out_of_order_or_range_do_not_decode(tmp_path: Path) -> None:
    codec = parse_codec("topk:0.01")
    base = make_state(0)
    layout = WeightsLayout.of_state(base)
    entries = ErrorFeedback(codec).encode(StateSource(make_state(1)), StateSource(base), layout)
    codec.check(StateSource(entries), layout)  # as encoded: fine
    positions = entries["topk.positions16"]
    for broken in (positions.flip(0), positions + 21000):
        with pytest.raises(WeightsError, match="positions are not increasing"):
            codec.check(StateSource({**entries, "topk.positions16": broken}), layout)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.integers(-4, 4), min_size=1, max_size=300),
    share=st.floats(0.0, 1.0),
    not_finite=st.sampled_from([None, float("nan"), float("inf")]),
)
def test_the_largest_positions_are_a_stable_sorts_first_ties_to_the_lower_position(
    values: list[int], share: float, not_finite: float | None
) -> None:
    update = torch.tensor(values, dtype=torch.float32) / 3
    if not_finite is not None:
        update[len(values) // 2] = not_finite
    kept = max(1, round(share * len(values)))
    expected = torch.argsort(update.abs(), descending=True, stable=True)[:kept]
    assert compute_largest_positions(update, kept).tolist() == sorted(expected.tolist())
