"""Private data: the built-in digits shards for testnets, and an operator's own file: CSV, NPZ,
Parquet, or a folder of images with one subfolder per class.

Data never leaves the node. Each node splits its data into a training part and a vote part that
is never trained on; the built-in task also sets aside a held-out test set that no party trains
or votes on (for reporting only).
"""

from __future__ import annotations

import csv
import importlib.util
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from learnchain.ml.config import DIGITS_CLASSES, DIGITS_FEATURES
from learnchain.ml.errors import DataError

__all__ = ["DIGITS_CLASSES", "DIGITS_FEATURES"]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
Targets = npt.NDArray[Any]  # int64 class labels, or float32 values (regression)

SCALE_WARNING = 100.0  # a feature this far from 0 (after standardising) is warned about
TEST_FRACTION = 0.2
VOTE_FRACTION = 0.2


@dataclass(frozen=True)
class Dataset:
    """Features (float32, one row per sample) and targets: integer class labels, or float32
    values for a regression task."""

    x: FloatArray
    y: Targets
    # the features' column names in ``x``'s order, when the file names them (CSV, Parquet, an
    # NPZ with a ``feature_names`` array); empty otherwise
    feature_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, indices: npt.NDArray[np.int64]) -> Dataset:
        """The samples at ``indices``."""
        return Dataset(self.x[indices], self.y[indices], self.feature_names)


@dataclass(frozen=True)
class PartyData:
    """One node's private data, split into what it trains on and what it votes with."""

    train: Dataset
    vote: Dataset


def compute_digits_path() -> Path:
    """scikit-learn's bundled digits.csv.gz (what ``sklearn.datasets.load_digits`` reads).

    Found without importing scikit-learn, whose import costs a validator about 80 MB.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("scikit-learn is not installed; it provides the digits data")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"


def load_digits_pool(seed: int) -> tuple[Dataset, Dataset]:
    """scikit-learn's bundled digits (no download), scaled to [0, 1]: (pool, held-out test)."""
    table = np.loadtxt(compute_digits_path(), delimiter=",", dtype=np.float32)
    x = (table[:, :DIGITS_FEATURES] / 16.0).astype(np.float32)
    y = table[:, DIGITS_FEATURES].astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = round(len(y) * TEST_FRACTION)
    test, pool = order[:n_test], order[n_test:]
    return Dataset(x[pool], y[pool]), Dataset(x[test], y[test])


def split_test(data: Dataset, seed: int) -> tuple[Dataset, Dataset]:
    """A seeded split into (pool, held-out test) with ``TEST_FRACTION`` of the samples held out."""
    order = np.random.default_rng(seed).permutation(len(data))
    n_test = round(len(data) * TEST_FRACTION)
    return data.subset(order[n_test:]), data.subset(order[:n_test])


def compute_iid_shards(labels: IntArray, parties: int, seed: int) -> list[npt.NDArray[np.int64]]:
    """Indices split into ``parties`` equal random shards."""
    order = np.random.default_rng(seed).permutation(len(labels))
    return [np.sort(part) for part in np.array_split(order, parties)]


def compute_dirichlet_shards(
    labels: IntArray, parties: int, alpha: float, seed: int, min_size: int = 10
) -> list[npt.NDArray[np.int64]]:
    """Non-IID shards: each class is spread over the parties by proportions ~ Dirichlet(alpha).

    Redrawn (with the same seeded generator) until every party holds at least ``min_size``
    samples, the usual practice so that no party is empty.
    """
    if alpha <= 0:
        raise DataError(f"Dirichlet alpha must be positive, got {alpha}")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    for _ in range(1000):
        shards: list[list[int]] = [[] for _ in range(parties)]
        for c in classes:
            members = rng.permutation(np.flatnonzero(labels == c))
            proportions = rng.dirichlet(np.full(parties, alpha))
            cuts = (np.cumsum(proportions)[:-1] * len(members)).astype(int)
            for party, part in enumerate(np.split(members, cuts)):
                shards[party].extend(part.tolist())
        if min(len(s) for s in shards) >= min_size:
            return [np.sort(np.asarray(s, dtype=np.int64)) for s in shards]
    raise DataError(f"cannot give {parties} parties {min_size} samples each with alpha {alpha}")


def parse_partition(text: str) -> tuple[str, float]:
    """``iid`` or ``dirichlet:ALPHA``."""
    if text == "iid":
        return "iid", 0.0
    kind, _, value = text.partition(":")
    if kind == "dirichlet":
        try:
            alpha = float(value)
        except ValueError:
            alpha = -1.0
        if alpha > 0:
            return "dirichlet", alpha
    raise DataError(f"partition must be iid or dirichlet:ALPHA (ALPHA > 0), got {text!r}")


def split_train_vote(data: Dataset, seed: int, vote_fraction: float = VOTE_FRACTION) -> PartyData:
    """A seeded split into a training part and a vote part (at least one sample each)."""
    if len(data) < 2:
        raise DataError(f"need at least 2 samples to train and vote, got {len(data)}")
    order = np.random.default_rng(seed).permutation(len(data))
    n_vote = min(max(1, round(len(data) * vote_fraction)), len(data) - 1)
    return PartyData(train=data.subset(order[n_vote:]), vote=data.subset(order[:n_vote]))


def load_digits_party(
    party: int, parties: int, partition: str, seed: int
) -> tuple[PartyData, Dataset]:
    """Party ``party``'s shard of the digits (train and vote parts) and the held-out test set."""
    if not 0 <= party < parties:
        raise DataError(f"party {party} is outside 0..{parties - 1}")
    pool, test = load_digits_pool(seed)
    kind, alpha = parse_partition(partition)
    shards = (
        compute_iid_shards(pool.y, parties, seed)
        if kind == "iid"
        else compute_dirichlet_shards(pool.y, parties, alpha, seed)
    )
    return split_train_vote(pool.subset(shards[party]), seed * 1000 + party), test


Columns = tuple[str, ...]


def _read_csv(path: Path, label_column: str) -> tuple[FloatArray, Targets, Columns]:
    try:
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read the file ({error})") from error
    if not rows or not any(rows[0]):
        raise DataError(f"{path}: the file is empty")
    header, body = rows[0], [r for r in rows[1:] if r]
    if label_column not in header:
        raise DataError(f"{path}: no label column {label_column!r} (columns: {', '.join(header)})")
    if not body:
        raise DataError(f"{path}: the file has a header but no rows")
    _check_unique_columns(path, header)
    label_at = header.index(label_column)
    features, labels = [], []
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(
                f"{path}: line {line} has {len(row)} fields, the header has {len(header)}"
            )
        try:
            labels.append(float(row[label_at]))
            features.append([float(v) for i, v in enumerate(row) if i != label_at])
        except ValueError as error:
            raise DataError(f"{path}: line {line}: {error}") from error
    names = tuple(name for i, name in enumerate(header) if i != label_at)
    return np.asarray(features, dtype=np.float32), np.asarray(labels, dtype=np.float64), names


def _check_unique_columns(path: Path, names: list[str]) -> None:
    """DataError naming a column that appears twice (its values could not be told apart)."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(f"{path}: column {name!r} appears twice")
        seen.add(name)


def _read_npz(path: Path) -> tuple[FloatArray, Targets, Columns]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "x" not in archive or "y" not in archive:
                raise DataError(
                    f"{path}: an NPZ file needs arrays 'x' and 'y' (has {', '.join(archive.files)})"
                )
            x, y = archive["x"], archive["y"]
            names = archive.get("feature_names")
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"{path}: cannot read the NPZ file ({error})") from error
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise DataError(f"{path}: 'x' must be samples × features and 'y' one label per sample")
    if not np.issubdtype(y.dtype, np.number):
        raise DataError(f"{path}: labels 'y' must be numbers, got {y.dtype}")
    if names is None:
        return x.astype(np.float32), y, ()
    if names.dtype.kind != "U" or names.shape != (x.shape[1],):
        raise DataError(f"{path}: 'feature_names' must hold one string per column of 'x'")
    columns = [str(name) for name in names]
    _check_unique_columns(path, columns)
    return x.astype(np.float32), y, tuple(columns)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def read_data_file(
    path: str | Path,
    label_column: str = "label",
    class_names: list[str] | None = None,
    values: bool = False,
) -> Dataset:
    """An operator's own data, with finite features and non-negative integer labels (or, with
    ``values``, finite numbers to predict); its shape is whatever the data holds. CSV (a header
    with ``label_column``), NPZ (arrays x and y), Parquet (numeric columns and
    ``label_column``), or a directory of images with one subfolder per class (labels by
    ``class_names`` when given, else by sorted folder name)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    names: Columns = ()
    if path.is_dir():
        x, y = _read_image_folder(path, class_names)
    elif suffix == ".npz":
        x, y, names = _read_npz(path)
    elif suffix == ".csv":
        x, y, names = _read_csv(path, label_column)
    elif suffix == ".parquet":
        x, y, names = _read_parquet(path, label_column)
    else:
        raise DataError(
            f"{path}: expected a .csv, .npz or .parquet file, or a folder of images by class"
        )
    if len(y) == 0:
        raise DataError(f"{path}: the file has no samples")
    if not np.isfinite(x).all():
        bad = int(np.argwhere(~np.isfinite(x))[0][0])
        raise DataError(f"{path}: non-finite feature value in sample {bad}")
    if not np.isfinite(y).all():
        raise DataError(
            f"{path}: non-finite label in sample {int(np.argwhere(~np.isfinite(y))[0][0])}"
        )
    if values:
        return Dataset(x, y.astype(np.float32), names)
    if (y != np.round(y)).any():
        bad = int(np.argwhere(y != np.round(y))[0][0])
        raise DataError(
            f"{path}: labels must be integers (classes), found {y[bad]} in sample {bad}"
        )
    if y.min() < 0:
        raise DataError(f"{path}: labels must not be negative, found {y.min():g}")
    return Dataset(x, y.astype(np.int64), names)


def _read_parquet(path: Path, label_column: str) -> tuple[FloatArray, Targets, Columns]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            f"{path}: reading Parquet needs pyarrow (pip install 'learnchain[data]')"
        ) from None
    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow's ArrowInvalid, OSError and friends
        raise DataError(f"{path}: cannot read the Parquet file ({error})") from None
    names = table.column_names
    if label_column not in names:
        raise DataError(f"{path}: no label column {label_column!r} (columns: {', '.join(names)})")
    _check_unique_columns(path, names)
    try:
        y = np.asarray(table.column(label_column).to_numpy(zero_copy_only=False))
        columns = [
            np.asarray(table.column(n).to_numpy(zero_copy_only=False), dtype=np.float32)
            for n in names
            if n != label_column
        ]
    except (TypeError, ValueError) as error:
        raise DataError(f"{path}: every column must be numeric ({error})") from None
    if not np.issubdtype(y.dtype, np.number):
        raise DataError(f"{path}: labels {label_column!r} must be numbers, got {y.dtype}")
    if not columns:
        raise DataError(f"{path}: no feature columns besides {label_column!r}")
    return np.stack(columns, axis=1), y, tuple(n for n in names if n != label_column)


def compute_image_shape(path: Path, features: int) -> list[int]:
    """[channels, height, width] of a folder of images whose pixels make ``features`` values
    (so that a task can shape its input, e.g. ``x.reshape(-1, *shape)`` for a CNN)."""
    from PIL import Image

    first = next(
        image
        for folder in list_image_classes(path)
        for image in sorted((path / folder).iterdir())
        if image.suffix.lower() in IMAGE_SUFFIXES
    )
    with Image.open(first) as image:
        width, height = image.size
    return [features // (width * height), height, width]


def list_image_classes(path: Path) -> list[str]:
    """The class subfolders of an image folder, sorted."""
    return sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read_image_folder(path: Path, class_names: list[str] | None) -> tuple[FloatArray, IntArray]:
    """Every image under ``path/CLASS/``, as pixels in [0, 1] (grayscale when every image is,
    else RGB), flattened; all images must have one size."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError(
            f"{path}: reading images needs Pillow (pip install 'learnchain[data]')"
        ) from None
    folders = list_image_classes(path)
    if not folders:
        raise DataError(f"{path}: a folder of images needs one subfolder per class")
    names = class_names if class_names is not None else folders
    unknown = [f for f in folders if f not in names]
    if unknown:
        raise DataError(f"{path}: class folder {unknown[0]!r} is not one of the chain's classes")
    files = [
        (names.index(folder), image)
        for folder in folders
        for image in sorted((path / folder).iterdir())
        if image.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not files:
        raise DataError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in the class folders")
    images: list[Image.Image] = []
    for _, image_path in files:
        try:
            with Image.open(image_path) as opened:
                opened.load()
                images.append(opened.copy())
        except OSError as error:
            raise DataError(f"{image_path}: cannot read the image ({error})") from None
    size = images[0].size
    for (_, image_path), picture in zip(files, images, strict=True):
        if picture.size != size:
            raise DataError(
                f"{image_path}: {picture.size[0]}x{picture.size[1]} pixels, "
                f"{files[0][1]} has {size[0]}x{size[1]}"
            )
    mode = "L" if all(p.mode in ("1", "L", "LA", "I", "I;16") for p in images) else "RGB"
    x = np.stack(
        [np.asarray(p.convert(mode), dtype=np.float32).reshape(-1) / 255.0 for p in images]
    )
    return x, np.asarray([label for label, _ in files], dtype=np.int64)


def check_shape(path: str | Path, data: Dataset, features: int, classes: int) -> None:
    """DataError naming ``path``, the expected and the found shape, unless ``data`` fits."""
    found = data.x.shape[1]
    if found != features:
        raise DataError(f"{path}: {found} features per sample, the chain's task expects {features}")
    if data.y.max() >= classes:
        raise DataError(
            f"{path}: labels up to {data.y.max()}, the chain's task has {classes} classes "
            f"(0..{classes - 1})"
        )


def compute_column_order(
    path: str | Path, found: Columns, expected: Columns, whose: str = "the chain's"
) -> list[int] | None:
    """Where each of the ``expected`` feature columns is in a file's ``found`` ones: None when
    they are the same in the same order, the indices when only the order differs; DataError
    naming the columns when the names differ (training on misaligned features would corrupt
    the shared model)."""
    if found == expected:
        return None
    missing = [name for name in expected if name not in found]
    extra = [name for name in found if name not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {_list_names(missing)}")
        if extra:
            parts.append(f"unexpected {_list_names(extra)}")
        raise DataError(f"{path}: feature columns differ from {whose}: {'; '.join(parts)}")
    return [found.index(name) for name in expected]


def _list_names(names: list[str], shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(map(repr, names[:shown])) + more


def align_columns(
    path: str | Path, data: Dataset, expected: Columns, whose: str = "the chain's"
) -> Dataset:
    """``data`` with its feature columns in the ``expected`` order (the genesis's), when both
    name them; DataError when the names differ. Unnamed columns are taken as they are."""
    if not expected or not data.feature_names:
        return data
    order = compute_column_order(path, data.feature_names, expected, whose)
    if order is None:
        return data
    return Dataset(np.ascontiguousarray(data.x[:, order]), data.y, expected)


def load_operator_file(
    path: str | Path, features: int, classes: int, label_column: str = "label"
) -> Dataset:
    """An operator's own CSV or NPZ file, checked against the task's shape."""
    data = read_data_file(path, label_column)
    check_shape(path, data, features, classes)
    return data


def describe_scaling(data: Dataset, mean: list[float], scale: list[float]) -> str | None:
    """A warning when ``data``'s features, once standardised with the chain's statistics (or
    as they are, without), are on wildly different scales; else None. A model fed features
    whose ranges differ by orders of magnitude tends to learn only the majority class."""
    x = data.x.astype(np.float64)
    if mean:
        x = (x - np.asarray(mean)) / np.asarray(scale)
    spread = np.abs(x).max(axis=0) if len(x) else np.zeros(0)
    large = [i for i, value in enumerate(spread) if value > SCALE_WARNING]
    if not large:
        return None
    shown = ", ".join(f"feature {i} (up to {spread[i]:.3g})" for i in large[:5])
    more = f" and {len(large) - 5} more" if len(large) > 5 else ""
    how = (
        "after the chain's standardisation"
        if mean
        else "and the task does not standardise its inputs"
    )
    return (
        f"features on a large scale {how}: {shown}{more}; scale them to about -10..10 "
        "(the model may otherwise learn only the majority class)"
    )
