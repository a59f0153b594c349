"""`tls = true` without the node's certificate files is a one-line error at start, naming the
file and the command that writes it; `tls issue` with something that is no authority too."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from learnchain.node.cli import main
from learnchain.node.home.files import set_config_value
from tests.node.homes import make_home


def test_tls_on_without_certificate_files_is_a_one_line_error(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    set_config_value(home, "tls", "true")
    done = CliRunner().invoke(main, ["start", "--home", str(home)])
    assert done.exit_code == 1
    assert "tls = true, but" in done.output and "learnchain tls issue" in done.output
    assert done.output.count("\n") == 1
    assert not (home / "data" / "chain.db").exists()


def test_issuing_from_a_directory_that_is_no_authority_is_a_one_line_error(
    tmp_path: Path,
) -> None:
    home = make_home(tmp_path)
    (tmp_path / "empty").mkdir()
    done = CliRunner().invoke(
        main, ["tls", "issue", "--ca", str(tmp_path / "empty"), "--home", str(home)]
    )
    assert done.exit_code == 1
    assert "not a certificate authority" in done.output
    assert done.output.count("\n") == 1
    assert not (home / "tls").exists()
