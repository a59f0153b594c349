"""What the demo trains on when given an operator's files: a held-out fifth of each file pooled
as the test set, the rest as that validator's file (columns aligned by name), and the parties'
training parts for the comparison with each alone and all pooled."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from learnchain.ml.data import read_data_file
from learnchain.node.cli.demo_data import prepare_files


def write(path: Path, header: list[str], rows: int, offset: int) -> Path:
    lines = [",".join(header)]
    for i in range(rows):
        values = {"a": i + offset, "b": 10 * (i + offset), "label": i % 2}
        lines.append(",".join(str(values[name]) for name in header))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_demo_holds_out_a_fifth_of_each_file_and_aligns_columns_by_name(
    tmp_path: Path,
) -> None:
    first = write(tmp_path / "a.csv", ["a", "b", "label"], 50, 0)
    second = write(tmp_path / "b.csv", ["label", "b", "a"], 30, 1000)  # another column order
    data = prepare_files([first, second], "label", tmp_path / "parts", seed=3)
    assert len(data.test) == 10 + 6
    kept = [Path(p) for p in data.testnet_args[1].split(",")]
    assert [len(read_data_file(p)) for p in kept] == [40, 24]
    assert read_data_file(kept[1]).feature_names == ("a", "b")
    second_rows = data.test.x[data.test.x[:, 0] >= 1000]
    assert np.allclose(second_rows[:, 1], 10 * second_rows[:, 0]), "b stays b after reordering"
    held_out = {tuple(row) for row in data.test.x}
    assert not held_out & {tuple(row) for p in kept for row in read_data_file(p).x}
    assert [len(p.train) + len(p.vote) for p in data.parties] == [40, 24]
