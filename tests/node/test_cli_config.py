"""`learnchain config get|set` changes one field of a home's config.toml, checked as `start`
reads it; a bad key or value is a one-line error that leaves the file as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from learnchain.node.cli import main
from learnchain.node.home.files import read_config


@pytest.fixture
def home(tmp_path: Path) -> Path:
    created = CliRunner().invoke(
        main, ["testnet", "--validators", "2", "--output-dir", str(tmp_path / "net")]
    )
    assert created.exit_code == 0, created.output
    return tmp_path / "net" / "node0"


def test_set_changes_one_field_and_get_reads_it(home: Path) -> None:
    runner = CliRunner()
    for key, value in (("train", "false"), ("attack", "label_flip"), ("timeouts.propose", "5000")):
        done = runner.invoke(main, ["config", "set", key, value, "--home", str(home)])
        assert done.exit_code == 0, done.output
    config = read_config(home)
    assert (config.train, config.attack, config.timeouts.propose) == (False, "label_flip", 5000)
    shown = runner.invoke(main, ["config", "get", "timeouts.propose", "--home", str(home)])
    assert shown.output.strip() == "5000"
    shown = runner.invoke(main, ["config", "get", "train", "--home", str(home)])
    assert shown.output == "false\n", "as config.toml writes it, so that set takes it back"


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("colour", "blue", "colour: unknown field"),
        ("network.listen", "x", "unknown section"),
        ("data.party", "9", "data.party: must be in 0..1"),
        ("timeouts.propose", "fast", "timeouts.propose: expected int"),
        ("listen", "nowhere", "listen: expected host:port"),
    ],
)
def test_a_bad_key_or_value_is_one_line_and_changes_nothing(
    home: Path, key: str, value: str, error: str
) -> None:
    before = (home / "config.toml").read_text()
    done = CliRunner().invoke(main, ["config", "set", key, value, "--home", str(home)])
    assert done.exit_code == 1
    assert error in done.output and len(done.output.strip().splitlines()) == 1
    assert (home / "config.toml").read_text() == before
