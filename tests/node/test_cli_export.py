"""`learnchain model export --out` to a directory or into a missing directory is a one-line
error before anything is fetched."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from learnchain.node.cli import main


@pytest.mark.parametrize(
    ("out", "error"),
    [(".", "is a directory"), ("missing/model.safetensors", "does not exist")],
)
def test_a_bad_out_path_is_refused_before_any_call(tmp_path: Path, out: str, error: str) -> None:
    done = CliRunner().invoke(
        main,
        ["model", "export", "--output-file", str(tmp_path / out), "--node", "127.0.0.1:9"],
    )
    assert done.exit_code == 2
    assert error in done.output
    assert list(tmp_path.iterdir()) == []
