"""A chain's codec is chosen at testnet/init (``--task-param codec=...``): a known one lands in
the genesis, an unknown one or a bad fraction is one line and nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from learnchain.node.cli import main


def test_the_codec_lands_in_the_genesis(tmp_path: Path) -> None:
    done = CliRunner().invoke(
        main,
        [
            "testnet",
            "--validators",
            "2",
            "--output-dir",
            str(tmp_path / "net"),
            "--task-param",
            "codec=int8",
        ],
    )
    assert done.exit_code == 0, done.output
    genesis = json.loads((tmp_path / "net" / "node0" / "genesis.json").read_text())
    assert genesis["task"]["codec"] == "int8"


@pytest.mark.parametrize(
    ("codec", "message"),
    [
        ("zip", "task.codec must be one of float32, bfloat16, int8, topk:FRACTION, got 'zip'"),
        ("topk:0", "task.codec 'topk:0': the fraction of values kept must be a number above 0"),
    ],
)
def test_an_unknown_codec_or_a_bad_fraction_is_one_line_and_writes_nothing(
    tmp_path: Path, codec: str, message: str
) -> None:
    home = tmp_path / "home"
    done = CliRunner().invoke(
        main, ["init", "--home", str(home), "--moniker", "n", "--task-param", f"codec={codec}"]
    )
    assert done.exit_code != 0
    errors = [line for line in done.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and message in errors[0], done.output
    assert not home.exists()
