"""Weights travel as safetensors; their canonical hash is the same everywhere."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from learnchain.ml.codec import (
    compute_encoded_weights_hash,
    compute_weights_hash,
    decode_weights,
    encode_weights,
)
from learnchain.ml.errors import WeightsError
from learnchain.ml.tasks import TaskConfig, get_task

LIMIT = 1 << 20


def initial_state(seed: int = 0, name: str = "digits-mlp") -> dict[str, torch.Tensor]:
    return get_task(TaskConfig(name=name, seed=seed)).initial_model().state_dict()


def test_a_round_trip_keeps_every_tensor_and_the_hash() -> None:
    state = initial_state()
    decoded = decode_weights(encode_weights(state), state, LIMIT)
    assert all(torch.equal(state[k], decoded[k]) for k in state)
    assert compute_weights_hash(decoded) == compute_weights_hash(state)


def test_the_hash_is_identical_in_another_process() -> None:
    code = (
        "from learnchain.ml.codec import compute_weights_hash;"
        "from learnchain.ml.tasks import TaskConfig, get_task;"
        "print(compute_weights_hash(get_task(TaskConfig(seed=0)).initial_model().state_dict()).hex())"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert other.stdout.strip() == compute_weights_hash(initial_state()).hex()


def test_the_genesis_model_depends_on_the_seed_only() -> None:
    assert compute_weights_hash(initial_state(0)) == compute_weights_hash(initial_state(0))
    assert compute_weights_hash(initial_state(0)) != compute_weights_hash(initial_state(1))
    assert compute_weights_hash(initial_state(0, "digits-cnn")) == compute_weights_hash(
        initial_state(0, "digits-cnn")
    )


def test_the_hash_ignores_dict_order_but_not_content() -> None:
    state = initial_state()
    reordered = dict(reversed(list(state.items())))
    assert compute_weights_hash(reordered) == compute_weights_hash(state)
    changed = {k: v.clone() for k, v in state.items()}
    changed["0.bias"][3] += 1e-6
    assert compute_weights_hash(changed) != compute_weights_hash(state)
    renamed = {("x" + k if k == "0.bias" else k): v for k, v in state.items()}
    assert compute_weights_hash(renamed) != compute_weights_hash(state)


def _bad(state: dict[str, torch.Tensor], **change: torch.Tensor | None) -> dict[str, torch.Tensor]:
    bad = {k: v.clone() for k, v in state.items()}
    for name, value in change.items():
        name = name.replace("_", ".")
        if value is None:
            bad.pop(name)
        else:
            bad[name] = value
    return bad


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda s: _bad(s, **{"0_bias": None}), "missing \\['0.bias'\\]"),
        (lambda s: {**s, "extra": torch.zeros(1)}, "unexpected \\['extra'\\]"),
        (lambda s: _bad(s, **{"0_bias": torch.zeros(3)}), "0.bias: shape"),
        (lambda s: _bad(s, **{"0_bias": s["0.bias"].double()}), "0.bias: dtype"),
        (
            lambda s: _bad(s, **{"0_bias": torch.full_like(s["0.bias"], float("nan"))}),
            "NaN or infinite",
        ),
        (
            lambda s: _bad(s, **{"0_bias": torch.full_like(s["0.bias"], float("inf"))}),
            "NaN or infinite",
        ),
    ],
)
def test_weights_that_do_not_fit_the_model_are_refused(make: object, message: str) -> None:
    state = initial_state()
    with pytest.raises(WeightsError, match=message):
        decode_weights(encode_weights(make(state)), state, LIMIT)  # type: ignore[operator]


def test_oversized_truncated_and_garbage_bytes_are_refused() -> None:
    state = initial_state()
    data = encode_weights(state)
    with pytest.raises(WeightsError, match="more than the limit"):
        decode_weights(data, state, len(data) - 1)
    with pytest.raises(WeightsError, match="not valid safetensors"):
        decode_weights(data[: len(data) // 2], state, LIMIT)
    with pytest.raises(WeightsError):
        decode_weights(b"\x00" * 3, state, LIMIT)
    with pytest.raises(WeightsError, match="not valid safetensors"):
        decode_weights(b"garbage" * 100, state, LIMIT)


def test_a_pickle_is_never_loaded() -> None:
    state = initial_state()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with pytest.raises(WeightsError, match="not valid safetensors"):
        decode_weights(buffer.getvalue(), state, LIMIT)


def test_the_hash_of_encoded_bytes_equals_the_hash_of_the_decoded_weights() -> None:
    for name in ("digits-mlp", "digits-cnn"):
        state = initial_state(name=name)
        data = encode_weights(state)
        expected = compute_weights_hash(state)
        assert compute_encoded_weights_hash(data, state, LIMIT) == expected
        assert compute_encoded_weights_hash(bytearray(data), state, LIMIT) == expected


def _with_header(data: bytes, edit: object) -> bytes:
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    edit(header)  # type: ignore[operator]
    encoded = json.dumps(header).encode()
    return len(encoded).to_bytes(8, "little") + encoded + data[8 + size :]


def _overlap(header: dict[str, dict[str, list[int]]]) -> None:
    first, second = sorted(k for k in header if k != "__metadata__")[:2]
    header[second]["data_offsets"] = list(header[first]["data_offsets"])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_overlap, "offsets do not match|overlap or leave gaps"),
        (lambda h: h["0.weight"].update(dtype="F64"), "dtype"),
        (lambda h: h["0.weight"].update(dtype="X9"), "unknown or missing dtype"),
        (lambda h: h["0.weight"].update(data_offsets=[0, 4]), "offsets do not match"),
    ],
)
def test_a_crafted_header_is_refused_by_both_readers(edit: object, message: str) -> None:
    state = initial_state()
    data = _with_header(encode_weights(state), edit)
    with pytest.raises(WeightsError, match=message):
        compute_encoded_weights_hash(data, state, LIMIT)
    with pytest.raises(WeightsError, match=message):
        decode_weights(data, state, LIMIT)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_weights_that_diverged_are_never_written(tmp_path: Path, bad: float) -> None:
    from learnchain.ml.weights_file import StateSource, WeightsLayout, iter_source, write_weights

    state = get_task(TaskConfig()).initial_weights()
    state["2.bias"] = state["2.bias"].clone()
    state["2.bias"][3] = bad
    layout = WeightsLayout.of_state(state)
    with pytest.raises(WeightsError, match=r"2\.bias: contains NaN or infinite values"):
        write_weights(tmp_path / "w.safetensors", layout, iter_source(StateSource(state), layout))
    assert list(tmp_path.iterdir()) == []
