"""Private data: digits shards by seed, train/vote splits, and operators' own files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from learnchain.ml.data import (
    Dataset,
    compute_dirichlet_shards,
    compute_iid_shards,
    load_digits_party,
    load_digits_pool,
    load_operator_file,
    parse_partition,
    read_data_file,
    split_train_vote,
)
from learnchain.ml.data_summary import compute_data_summary, compute_summary_shape
from learnchain.ml.errors import DataError


def label_entropy(labels: np.ndarray) -> float:
    p = np.bincount(labels, minlength=10) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def test_the_held_out_test_set_is_disjoint_from_the_parties_pool() -> None:
    pool, test = load_digits_pool(seed=0)
    rows = {r.tobytes() for r in pool.x}
    assert len(pool) + len(test) == 1797
    assert sum(r.tobytes() in rows for r in test.x) < 5  # digits has a few duplicate images


@pytest.mark.parametrize("kind", ["iid", "dirichlet"])
def test_shards_are_disjoint_and_cover_the_pool(kind: str) -> None:
    pool, _ = load_digits_pool(0)
    shards = (
        compute_iid_shards(pool.y, 5, seed=3)
        if kind == "iid"
        else compute_dirichlet_shards(pool.y, 5, alpha=0.5, seed=3)
    )
    joined = np.concatenate(shards)
    assert len(joined) == len(pool) == len(set(joined.tolist()))


def test_shards_depend_only_on_the_seed() -> None:
    pool, _ = load_digits_pool(0)
    a = compute_dirichlet_shards(pool.y, 5, 0.5, seed=1)
    b = compute_dirichlet_shards(pool.y, 5, 0.5, seed=1)
    c = compute_dirichlet_shards(pool.y, 5, 0.5, seed=2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_a_small_dirichlet_alpha_skews_the_labels() -> None:
    pool, _ = load_digits_pool(0)
    iid = compute_iid_shards(pool.y, 5, seed=0)
    skewed = compute_dirichlet_shards(pool.y, 5, alpha=0.1, seed=0)
    assert (
        np.mean([label_entropy(pool.y[s]) for s in skewed])
        < np.mean([label_entropy(pool.y[s]) for s in iid]) - 0.5
    )


def test_the_vote_part_is_disjoint_from_the_training_part() -> None:
    party, _ = load_digits_party(2, 5, "dirichlet:0.5", seed=0)
    train_rows = {
        r.tobytes() + bytes([y]) for r, y in zip(party.train.x, party.train.y, strict=True)
    }
    overlap = sum(
        r.tobytes() + bytes([y]) in train_rows
        for r, y in zip(party.vote.x, party.vote.y, strict=True)
    )
    assert len(party.vote) > 0 and len(party.train) > len(party.vote)
    assert overlap <= 1


@pytest.mark.parametrize("text", ["dirichlet", "dirichlet:x", "dirichlet:-1", "noniid", ""])
def test_a_bad_partition_is_a_clear_error(text: str) -> None:
    with pytest.raises(DataError, match="partition must be iid or dirichlet:ALPHA"):
        parse_partition(text)


def test_split_needs_two_samples() -> None:
    pool, _ = load_digits_pool(0)
    with pytest.raises(DataError, match="at least 2 samples"):
        split_train_vote(pool.subset(np.array([0])), seed=0)


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_an_operator_csv_loads(tmp_path: Path) -> None:
    data = load_operator_file(write_csv(tmp_path / "d.csv", "a,b,label\n1,2,0\n3,4.5,1\n"), 2, 2)
    assert data.x.tolist() == [[1.0, 2.0], [3.0, 4.5]]
    assert data.y.tolist() == [0, 1]


def test_an_operator_npz_loads(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, x=np.ones((4, 3)), y=np.array([0, 1, 2, 0]))
    assert len(load_operator_file(path, 3, 3)) == 4


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "no such file"),
        ("empty.csv", "", "the file is empty"),
        ("header.csv", "a,b,label\n", "header but no rows"),
        ("nolabel.csv", "a,b,c\n1,2,3\n", "no label column 'label'"),
        ("features.csv", "a,label\n1,0\n", "1 features per sample, the chain's task expects 2"),
        ("nan.csv", "a,b,label\n1,nan,0\n", "non-finite feature value in sample 0"),
        ("inf.csv", "a,b,label\n1,2,0\ninf,2,1\n", "non-finite feature value in sample 1"),
        ("text.csv", "a,b,label\n1,two,0\n", "line 2"),
        ("ragged.csv", "a,b,label\n1,2\n", "line 2 has 2 fields"),
        ("range.csv", "a,b,label\n1,2,7\n", r"labels up to 7, the chain's task has 2 classes"),
        ("negative.csv", "a,b,label\n1,2,-1\n", "labels must not be negative"),
        ("data.txt", "a,b,label\n1,2,0\n", "expected a .csv, .npz or .parquet file"),
    ],
)
def test_bad_operator_files_get_one_clear_error(
    tmp_path: Path, name: str, content: str | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_operator_file(path, features=2, classes=2)


def test_an_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "binary.csv"
    path.write_bytes(b"\xff\xfe\x00garbage\x80")
    with pytest.raises(DataError, match="cannot read the file"):
        load_operator_file(path, 2, 2)
    npz = tmp_path / "broken.npz"
    npz.write_bytes(b"not a zip at all")
    with pytest.raises(DataError, match="cannot read the NPZ file"):
        load_operator_file(npz, 2, 2)


def test_an_npz_with_pickled_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "objects.npz"
    np.savez(path, x=np.array([object()], dtype=object), y=np.array([0]))
    with pytest.raises(DataError, match="cannot read the NPZ file"):
        load_operator_file(path, 1, 2)


def test_an_npz_without_x_and_y_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, features=np.ones((2, 2)))
    with pytest.raises(DataError, match="needs arrays 'x' and 'y'"):
        load_operator_file(path, 2, 2)


def compute_shape_of(named: list[tuple[str, Dataset]]) -> tuple[int, int]:
    return compute_summary_shape([(path, compute_data_summary(data)) for path, data in named])


def test_the_shape_of_a_chain_is_taken_from_its_files(tmp_path: Path) -> None:
    a = read_data_file(write_csv(tmp_path / "a.csv", "f,g,h,label\n1,2,3,0\n4,5,6,4\n"))
    b = read_data_file(write_csv(tmp_path / "b.csv", "f,g,h,label\n1,2,3,2\n"))
    assert compute_shape_of([("a.csv", a), ("b.csv", b)]) == (3, 5)


def test_files_that_disagree_on_features_are_named(tmp_path: Path) -> None:
    a = read_data_file(write_csv(tmp_path / "a.csv", "f,g,label\n1,2,0\n"))
    b = read_data_file(write_csv(tmp_path / "b.csv", "f,label\n1,1\n"))
    with pytest.raises(DataError, match=r"b\.csv: 1 features per sample, a\.csv has 2"):
        compute_shape_of([("a.csv", a), ("b.csv", b)])


def test_a_parquet_file_is_read_with_its_label_column(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0, 3.0], "b": [4, 5, 6], "y": [0, 2, 1]}), path)
    data = read_data_file(path, label_column="y")
    assert data.x.tolist() == [[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]]
    assert data.y.tolist() == [0, 2, 1]


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"a": [1.0]}, "no label column 'label'"),
        ({"a": [1.0], "label": [0.5]}, r"labels must be integers \(classes\), found 0\.5"),
        ({"a": ["x"], "label": [0]}, "every column must be numeric"),
    ],
)
def test_a_bad_parquet_file_is_one_clear_error(
    tmp_path: Path, columns: dict[str, list[object]], message: str
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table(columns), path)
    with pytest.raises(DataError, match=message):
        read_data_file(path)


def write_images(root: Path, classes: dict[str, int], size: tuple[int, int] = (4, 3)) -> Path:
    from PIL import Image

    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("L", size, color=40 * i).save(root / name / f"{i}.png")
    return root


def test_a_folder_of_images_by_class_is_read_as_pixels_in_0_1(tmp_path: Path) -> None:
    data = read_data_file(write_images(tmp_path / "imgs", {"cat": 2, "dog": 3}))
    assert data.x.shape == (5, 12)  # 4x3 grayscale pixels
    assert data.y.tolist() == [0, 0, 1, 1, 1]
    assert data.x.min() >= 0.0 and data.x.max() <= 1.0


def test_image_labels_follow_the_chains_class_names(tmp_path: Path) -> None:
    folder = write_images(tmp_path / "imgs", {"dog": 1})  # this party has no cats
    assert read_data_file(folder, class_names=["cat", "dog"]).y.tolist() == [1]
    with pytest.raises(DataError, match="'dog' is not one of the chain's classes"):
        read_data_file(folder, class_names=["cat", "bird"])


def test_images_of_another_size_are_named(tmp_path: Path) -> None:
    folder = write_images(tmp_path / "imgs", {"cat": 1})
    write_images(tmp_path / "imgs2", {"dog": 1}, size=(5, 5))
    (tmp_path / "imgs2" / "dog").rename(folder / "dog")
    with pytest.raises(DataError, match=r"0\.png: 5x5 pixels, .* has 4x3"):
        read_data_file(folder)


def test_values_to_predict_are_read_as_numbers(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "r.csv", "a,b,label\n1,2,0.5\n3,4,-7.25\n")
    data = read_data_file(path, values=True)
    assert data.y.dtype == np.float32 and data.y.tolist() == [0.5, -7.25]
    assert compute_shape_of([("r.csv", data)]) == (2, 1)
    with pytest.raises(DataError, match="labels must be integers"):
        read_data_file(path)


def test_files_name_their_feature_columns(tmp_path: Path) -> None:
    csv_file = write_csv(tmp_path / "d.csv", "a,label,b\n1,0,2\n3,1,4\n")
    assert read_data_file(csv_file).feature_names == ("a", "b")
    npz_file = tmp_path / "d.npz"
    np.savez(npz_file, x=np.ones((2, 2)), y=np.array([0, 1]), feature_names=np.array(["u", "v"]))
    assert read_data_file(npz_file).feature_names == ("u", "v")
    np.savez(tmp_path / "plain.npz", x=np.ones((2, 2)), y=np.array([0, 1]))
    assert read_data_file(tmp_path / "plain.npz").feature_names == ()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("twice.csv", "a,a,label\n1,2,0\n", "column 'a' appears twice"),
    ],
)
def test_a_file_that_names_a_column_twice_is_refused(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        read_data_file(write_csv(tmp_path / name, content))


def test_npz_feature_names_must_fit_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, x=np.ones((2, 3)), y=np.array([0, 1]), feature_names=np.array(["u", "v"]))
    with pytest.raises(DataError, match="one string per column"):
        read_data_file(path)


def test_columns_are_aligned_by_name_or_refused_naming_them() -> None:
    from learnchain.ml.data import Dataset, align_columns

    data = Dataset(np.array([[1.0, 2.0]], dtype=np.float32), np.array([0]), ("b", "a"))
    aligned = align_columns("f.csv", data, ("a", "b"))
    assert aligned.x.tolist() == [[2.0, 1.0]] and aligned.feature_names == ("a", "b")
    assert align_columns("f.csv", data, ("b", "a")) is data
    unnamed = Dataset(data.x, data.y)
    assert align_columns("f.csv", unnamed, ("a", "b")) is unnamed
    with pytest.raises(
        DataError, match=r"f.csv: feature columns differ .*missing 'c'; unexpected 'b'"
    ):
        align_columns("f.csv", data, ("a", "c"))
