"""A party's data summary (rows, per-feature sums, squared deviations) pools to the same
standardisation as the rows themselves, in any column order, and a bad summary is a one-line
error."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learnchain.ml.data import Dataset
from learnchain.ml.data_summary import (
    DataSummary,
    align_summary,
    compute_data_summary,
    compute_image_params,
    compute_pooled_feature_statistics,
    compute_pooled_target_statistics,
    compute_summary_shape,
    summary_from_dict,
    summary_to_dict,
)
from learnchain.ml.errors import DataError


def make_data(rows: int, features: int, seed: int, offset: float = 0.0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = (rng.normal(offset, 1 + seed % 5, (rows, features))).astype(np.float32)
    return Dataset(x, rng.integers(0, 4, rows).astype(np.int64))


def rows_pooled(parts: list[Dataset]) -> tuple[np.ndarray, np.ndarray]:
    x = np.concatenate([p.x for p in parts]).astype(np.float64)
    return x.mean(axis=0), x.std(axis=0)


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=5),
    features=st.integers(1, 6),
    seed=st.integers(0, 10_000),
    offset=st.sampled_from([0.0, 1e3, -1e5]),
)
def test_pooled_summaries_give_the_statistics_of_the_pooled_rows(
    sizes: list[int], features: int, seed: int, offset: float
) -> None:
    parts = [make_data(n, features, seed + i, offset) for i, n in enumerate(sizes)]
    mean, scale = compute_pooled_feature_statistics([compute_data_summary(p) for p in parts])
    expected_mean, expected_scale = rows_pooled(parts)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-9, atol=1e-9)
    kept = expected_scale >= 1e-6 * np.maximum(1.0, np.abs(expected_mean))
    np.testing.assert_allclose(np.asarray(scale)[kept], expected_scale[kept], rtol=1e-7)
    assert all(s == 1.0 for s in np.asarray(scale)[~kept])


def test_a_constant_feature_is_scaled_by_one() -> None:
    x = np.array([[5.0, 1.0], [5.0, 2.0]], dtype=np.float32)
    summary = compute_data_summary(Dataset(x, np.array([0, 1])))
    assert compute_pooled_feature_statistics([summary])[1][0] == 1.0


def test_values_to_predict_pool_their_mean_and_scale() -> None:
    a = Dataset(np.zeros((2, 1), np.float32), np.array([1.0, 3.0], np.float32))
    b = Dataset(np.zeros((3, 1), np.float32), np.array([5.0, 7.0, 9.0], np.float32))
    summaries = [compute_data_summary(a), compute_data_summary(b)]
    mean, scale = compute_pooled_target_statistics(summaries)
    assert mean == pytest.approx(5.0) and scale == pytest.approx(np.std([1, 3, 5, 7, 9]))
    assert summaries[0].largest_label is None
    assert compute_summary_shape([("a", summaries[0]), ("b", summaries[1])]) == (1, 1)


def test_a_summary_in_another_column_order_is_aligned_by_name() -> None:
    x = np.array([[1.0, 10.0], [3.0, 30.0]], dtype=np.float32)
    mine = compute_data_summary(Dataset(x, np.array([0, 1]), ("a", "b")))
    theirs = compute_data_summary(Dataset(x[:, ::-1].copy(), np.array([0, 1]), ("b", "a")))
    assert align_summary("theirs", theirs, ("a", "b"), "mine") == mine


def test_a_summary_naming_other_columns_is_refused_by_name() -> None:
    x = np.ones((2, 2), dtype=np.float32)
    theirs = compute_data_summary(Dataset(x, np.array([0, 1]), ("a", "c")))
    with pytest.raises(DataError, match=r"gentx-b\.json: .*missing 'b'; unexpected 'c'"):
        align_summary("gentx-b.json", theirs, ("a", "b"), "gentx-a.json's")


def test_parties_that_disagree_on_features_or_on_labels_are_named() -> None:
    three = compute_data_summary(make_data(4, 3, 0))
    two = compute_data_summary(make_data(4, 2, 1))
    with pytest.raises(DataError, match="b: 2 features per sample, a has 3"):
        compute_summary_shape([("a", three), ("b", two)])
    values = compute_data_summary(Dataset(np.ones((2, 3), np.float32), np.ones(2, np.float32)))
    with pytest.raises(DataError, match="b: its targets are values, a's are class labels"):
        compute_summary_shape([("a", three), ("b", values)])


def test_the_classes_are_the_largest_label_of_any_party_plus_one() -> None:
    a = compute_data_summary(Dataset(np.ones((2, 1), np.float32), np.array([0, 1])))
    b = compute_data_summary(Dataset(np.ones((2, 1), np.float32), np.array([0, 6])))
    assert compute_summary_shape([("a", a), ("b", b)]) == (1, 7)


def test_a_summary_survives_its_json_form() -> None:
    summary = compute_data_summary(make_data(5, 3, 2))
    assert summary_from_dict(summary_to_dict(summary)) == summary


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"count": 0}, "data.count: expected a positive whole number"),
        ({"count": True}, "data.count"),
        ({"sums": [1.0, 2.0]}, "data.squared_deviations: 3 values for 2 features"),
        ({"sums": []}, "data.sums: expected 1 to"),
        ({"sums": ["1", 2, 3]}, "data.sums: expected a list of numbers"),
        ({"squared_deviations": [1.0, -1.0, 0.0]}, "cannot be negative"),
        ({"feature_names": ["a"]}, "data.feature_names: 1 names for 3 features"),
        ({"largest_label": -1}, "data.largest_label"),
        ({"target_squared_deviation": -2.0}, "data.target_squared_deviation"),
    ],
)
def test_a_bad_summary_is_refused_naming_its_field(change: dict[str, object], message: str) -> None:
    raw = {**summary_to_dict(compute_data_summary(make_data(5, 3, 2))), **change}
    with pytest.raises(DataError, match=message):
        summary_from_dict(raw)


def image_summary(classes: tuple[str, ...], shape: tuple[int, ...] = (1, 1, 3)) -> DataSummary:
    return replace(compute_data_summary(make_data(5, 3, 2)), class_names=classes, image_shape=shape)


def test_an_image_folders_summary_survives_its_json_form_and_a_files_has_no_image_fields() -> None:
    summary = image_summary(("ant", "bee"))
    assert summary_from_dict(summary_to_dict(summary)) == summary
    assert "class_names" not in summary_to_dict(compute_data_summary(make_data(5, 3, 2)))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"class_names": ["ant", "ant"]}, "data.class_names: expected 1 to"),
        ({"class_names": ["sub/ant"]}, "data.class_names"),
        ({"class_names": [".hidden"]}, "data.class_names"),
        (
            {"image_shape": [1, 2, 2]},
            r"data.image_shape: expected \[channels, height, width\] of 3",
        ),
        ({"image_shape": [3]}, "data.image_shape"),
    ],
)
def test_a_bad_image_field_is_refused_naming_it(change: dict[str, object], message: str) -> None:
    raw = {**summary_to_dict(image_summary(("ant", "bee"))), **change}
    with pytest.raises(DataError, match=message):
        summary_from_dict(raw)


def test_image_folders_pool_their_classes_sorted_and_must_share_one_shape() -> None:
    named = [("a", image_summary(("bee", "cat"))), ("b", image_summary(("ant", "bee")))]
    assert compute_image_params(named) == {
        "class_names": ["ant", "bee", "cat"],
        "image_shape": [1, 1, 3],
    }
    assert compute_image_params(named, ["cat", "bee", "ant", "dog"])["class_names"] == [
        "cat",
        "bee",
        "ant",
        "dog",
    ]  # the chain's own order, when it fixes the names
    with pytest.raises(DataError, match="b: class folder 'ant' is not one of the chain's"):
        compute_image_params(named, ["bee", "cat"])
    with pytest.raises(DataError, match=r"b: images of shape \[3, 1, 1\], a has \[1, 1, 3\]"):
        compute_image_params([named[0], ("b", image_summary(("ant",), (3, 1, 1)))])
    assert compute_image_params([("f", compute_data_summary(make_data(5, 3, 2)))]) == {}


def test_an_infinite_sum_is_refused() -> None:
    raw = summary_to_dict(compute_data_summary(make_data(5, 3, 2)))
    raw["sums"] = [float("inf"), 0.0, 0.0]
    with pytest.raises(DataError, match=r"data\.sums: every value must be finite"):
        summary_from_dict(raw)
