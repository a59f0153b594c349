"""A node home as `learnchain init` writes it, for CLI tests."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from learnchain.node.cli import main


def make_home(tmp_path: Path) -> Path:
    """``learnchain init`` a new chain's home under ``tmp_path``."""
    home = tmp_path / "home"
    done = CliRunner().invoke(main, ["init", "--home", str(home), "--moniker", "n"])
    assert done.exit_code == 0, done.output
    return home
