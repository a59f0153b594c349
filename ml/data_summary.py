"""What a chain needs to know of a party's data, without a row of it: the data's shape and the
statistics standardisation needs.

A chain made from data files standardises its inputs with the pooled mean and scale of every
party's features (and, for a task that predicts values, of the targets). ``learnchain testnet``
reads every file on one machine; in a genesis ceremony (node/home/genesis_ceremony.py) each
organisation sends only a ``DataSummary`` of its own file: the number of rows, the per-feature
sums and the per-feature sums of squared deviations from its own mean. Pooled, these give the
same mean and scale as the rows pooled (Chan et al.'s parallel variance), with no precision lost
to large means.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from learnchain.ml.data import Dataset, compute_column_order
from learnchain.ml.errors import DataError

MAX_FEATURES = 1_000_000  # a summary claiming more features than this is refused, not allocated
MAX_CLASSES = 100_000  # likewise for an image folder's class names


@dataclass(frozen=True)
class DataSummary:
    """A party's data reduced to its shape and per-feature sums: never a row."""

    count: int  # rows
    feature_names: tuple[str, ...]  # empty when the file does not name its columns
    sums: tuple[float, ...]  # per feature
    squared_deviations: tuple[float, ...]  # per feature, about this party's own mean
    largest_label: int | None  # classification: the largest label; None for values to predict
    target_sum: float = 0.0  # values to predict: their sum
    target_squared_deviation: float = 0.0  # and the sum of their squared deviations
    # a folder of images: its class subfolders (labels index the chain's pooled class names,
    # not these) and [channels, height, width]; empty for a file
    class_names: tuple[str, ...] = ()
    image_shape: tuple[int, ...] = ()

    @property
    def features(self) -> int:
        """Features per row."""
        return len(self.sums)


def compute_data_summary(data: Dataset) -> DataSummary:
    """The summary of ``data`` (float64 sums; an empty dataset is refused)."""
    if len(data) == 0:
        raise DataError("no rows to summarise")
    x = data.x.astype(np.float64)
    mean = x.mean(axis=0)
    values = not np.issubdtype(data.y.dtype, np.integer)
    y = data.y.astype(np.float64)
    return DataSummary(
        count=len(data),
        feature_names=tuple(data.feature_names),
        sums=tuple(float(v) for v in x.sum(axis=0)),
        squared_deviations=tuple(float(v) for v in ((x - mean) ** 2).sum(axis=0)),
        largest_label=None if values else int(data.y.max()),
        target_sum=float(y.sum()) if values else 0.0,
        target_squared_deviation=float(((y - y.mean()) ** 2).sum()) if values else 0.0,
    )


def align_summary(
    where: str, summary: DataSummary, expected: Sequence[str], whose: str
) -> DataSummary:
    """``summary`` with its features in the ``expected`` order (by name, when both name them);
    DataError naming ``where`` when the names differ."""
    if not expected or not summary.feature_names:
        return summary
    order = compute_column_order(where, summary.feature_names, tuple(expected), whose)
    if order is None:
        return summary
    return replace(
        summary,
        feature_names=tuple(expected),
        sums=tuple(summary.sums[i] for i in order),
        squared_deviations=tuple(summary.squared_deviations[i] for i in order),
    )


def compute_summary_shape(named: list[tuple[str, DataSummary]]) -> tuple[int, int]:
    """(features, classes) that fit every party: they must agree on the features and on whether
    labels are classes; the classes are the largest label plus one (at least 2), or 1 for values
    to predict. DataError naming the party that disagrees."""
    first_where, first = named[0]
    for where, summary in named[1:]:
        if summary.features != first.features:
            raise DataError(
                f"{where}: {summary.features} features per sample, {first_where} has "
                f"{first.features}"
            )
        if (summary.largest_label is None) != (first.largest_label is None):
            raise DataError(
                f"{where}: its targets are {_kind(summary)}, {first_where}'s are {_kind(first)}"
            )
    labels = [s.largest_label for _, s in named if s.largest_label is not None]
    if len(labels) < len(named):
        return first.features, 1
    return first.features, max(2, max(labels) + 1)


def compute_image_params(
    named: list[tuple[str, DataSummary]], class_names: Sequence[str] | None = None
) -> dict[str, Any]:
    """The genesis ``params`` for parties' folders of images: their class names pooled and
    sorted (or ``class_names`` when the chain fixes them) and the image shape they agree on;
    empty for files. DataError naming the party that has a file among folders, images of
    another shape, or a class the chain lacks."""
    folders = [(where, s) for where, s in named if s.class_names]
    if not folders:
        return {}
    first_where, first = folders[0]
    if len(folders) < len(named):
        file_where = next(where for where, s in named if not s.class_names)
        raise DataError(f"{file_where}: a data file, while {first_where} is a folder of images")
    names = sorted({n for _, s in folders for n in s.class_names})
    chosen = list(class_names) if class_names is not None else names
    for where, summary in folders:
        if summary.image_shape != first.image_shape:
            raise DataError(
                f"{where}: images of shape {list(summary.image_shape)}, {first_where} has "
                f"{list(first.image_shape)}"
            )
        unknown = [n for n in summary.class_names if n not in chosen]
        if unknown:
            raise DataError(
                f"{where}: class folder {unknown[0]!r} is not one of the chain's classes"
            )
    return {"class_names": chosen, "image_shape": list(first.image_shape)}


def _kind(summary: DataSummary) -> str:
    return "values" if summary.largest_label is None else "class labels"


def compute_pooled_feature_statistics(
    summaries: Sequence[DataSummary],
) -> tuple[list[float], list[float]]:
    """Per-feature mean and scale (standard deviation; 1 for a constant feature) of every
    party's rows pooled: what a chain made from these parties standardises inputs with."""
    total = sum(s.count for s in summaries)
    sums = np.sum([s.sums for s in summaries], axis=0)
    mean = sums / total
    deviations = np.sum(
        [
            np.asarray(s.squared_deviations) + s.count * (np.asarray(s.sums) / s.count - mean) ** 2
            for s in summaries
        ],
        axis=0,
    )
    scale = np.sqrt(deviations / total)
    scale[scale < 1e-6 * np.maximum(1.0, np.abs(mean))] = 1.0
    return [float(v) for v in mean], [float(v) for v in scale]


def compute_pooled_target_statistics(summaries: Sequence[DataSummary]) -> tuple[float, float]:
    """Mean and standard deviation (1 when constant) of the values to predict, pooled."""
    total = sum(s.count for s in summaries)
    mean = sum(s.target_sum for s in summaries) / total
    deviations = sum(
        s.target_squared_deviation + s.count * (s.target_sum / s.count - mean) ** 2
        for s in summaries
    )
    scale = math.sqrt(deviations / total)
    return mean, scale if scale > 1e-12 else 1.0


def summary_to_dict(summary: DataSummary) -> dict[str, Any]:
    """The JSON form of a summary (as a gentx carries it; a file's has no image fields)."""
    raw: dict[str, Any] = {
        "count": summary.count,
        "feature_names": list(summary.feature_names),
        "sums": list(summary.sums),
        "squared_deviations": list(summary.squared_deviations),
        "largest_label": summary.largest_label,
        "target_sum": summary.target_sum,
        "target_squared_deviation": summary.target_squared_deviation,
    }
    if summary.class_names:
        raw["class_names"] = list(summary.class_names)
        raw["image_shape"] = list(summary.image_shape)
    return raw


def summary_from_dict(raw: Any) -> DataSummary:
    """A summary from its JSON form; DataError naming the first bad field."""
    if not isinstance(raw, dict):
        raise DataError("data: expected an object")
    count = raw.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
        raise DataError(f"data.count: expected a positive whole number, got {count!r}")
    sums = _numbers(raw.get("sums"), "sums")
    squared = _numbers(raw.get("squared_deviations"), "squared_deviations")
    if not 0 < len(sums) <= MAX_FEATURES:
        raise DataError(f"data.sums: expected 1 to {MAX_FEATURES} features, got {len(sums)}")
    if len(squared) != len(sums):
        raise DataError(f"data.squared_deviations: {len(squared)} values for {len(sums)} features")
    if any(v < 0 for v in squared):
        raise DataError("data.squared_deviations: a sum of squares cannot be negative")
    names = raw.get("feature_names", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DataError("data.feature_names: expected a list of names")
    if names and len(names) != len(sums):
        raise DataError(f"data.feature_names: {len(names)} names for {len(sums)} features")
    label = raw.get("largest_label")
    if label is not None and (not isinstance(label, int) or isinstance(label, bool) or label < 0):
        raise DataError(f"data.largest_label: expected a label (0 or more) or null, got {label!r}")
    target_sum, target_squared = _numbers(
        [raw.get("target_sum", 0.0), raw.get("target_squared_deviation", 0.0)], "targets"
    )
    if target_squared < 0:
        raise DataError("data.target_squared_deviation: a sum of squares cannot be negative")
    class_names, image_shape = _image_fields(raw, len(sums))
    return DataSummary(
        count,
        tuple(names),
        tuple(sums),
        tuple(squared),
        label,
        target_sum,
        target_squared,
        class_names,
        image_shape,
    )


def _image_fields(raw: dict[str, Any], features: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """A summary's class names and image shape (both or neither); DataError naming the bad one."""
    names = raw.get("class_names", [])
    shape = raw.get("image_shape", [])
    if not names and not shape:
        return (), ()
    if (
        not isinstance(names, list)
        or not 0 < len(names) <= MAX_CLASSES
        or not all(is_class_folder_name(n) for n in names)
        or len(set(names)) != len(names)
    ):
        raise DataError(
            f"data.class_names: expected 1 to {MAX_CLASSES} distinct folder names (no path)"
        )
    if (
        not isinstance(shape, list)
        or len(shape) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)
        or math.prod(shape) != features
    ):
        raise DataError(
            f"data.image_shape: expected [channels, height, width] of {features} pixel values"
        )
    return tuple(names), tuple(shape)


def is_class_folder_name(name: Any) -> bool:
    """True for a class subfolder's name: a non-empty name, not hidden, with no path in it."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= 255
        and not name.startswith(".")
        and "/" not in name
        and "\\" not in name
    )


def _numbers(raw: Any, field: str) -> list[float]:
    if not isinstance(raw, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in raw
    ):
        raise DataError(f"data.{field}: expected a list of numbers")
    values = [float(v) for v in raw]
    if not all(math.isfinite(v) for v in values):
        raise DataError(f"data.{field}: every value must be finite")
    return values
