"""`learnchain unsafe-reset-all` starts a node's chain over from a damaged database: the stored
chain goes, the config, the keys and the double-sign guard stay."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from learnchain.consensus.crypto import compute_hash
from learnchain.consensus.events import SignState
from learnchain.consensus.types import Height, Round, Step
from learnchain.node.cli import main
from learnchain.node.store.store import STORE_FORMAT, Store
from tests.node.homes import make_home
from tests.node.test_store import remove_format, write_blocks

SIGNED = SignState(Height(40), Round(0), Step.PRECOMMIT, Round(0), compute_hash(b"block 40"))


def corrupt(database: Path) -> None:
    """Damage the stored blocks (the sign state, later in the same table file, survives)."""
    Store(database).close()  # the log becomes a table file
    table = min(database.glob("*.ldb"))  # the oldest: blocks from height 1
    data = bytearray(table.read_bytes())
    data[100:110] = b"\xff" * 10
    table.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage", [corrupt, remove_format], ids=["corrupt", "an older store format"]
)
def test_a_reset_keeps_the_keys_and_the_double_sign_guard_of_a_database_it_cannot_use(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    home = make_home(tmp_path)
    database = home / "data" / "chain.db"
    write_blocks(database, 40)
    with Store(database) as store:
        store.save_sign_state(SIGNED)
    damage(database)
    kept = sorted(p.name for p in home.rglob("*") if "chain.db" not in p.parts)

    done = CliRunner().invoke(main, ["unsafe-reset-all", "--home", str(home)])

    assert done.exit_code == 0, done.output
    assert "kept the double-sign guard (last signed height 40)" in done.output
    assert sorted(p.name for p in home.rglob("*") if "chain.db" not in p.parts) == kept
    with Store(database) as store:
        assert store.get_format() == STORE_FORMAT
        assert store.load_state() is None
        assert store.load_sign_state() == SIGNED


def test_a_reset_of_a_home_without_a_chain_changes_nothing(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    done = CliRunner().invoke(main, ["unsafe-reset-all", "--home", str(home)])
    assert done.exit_code == 0
    assert "nothing to reset" in done.output


def test_a_reset_of_a_directory_that_is_no_home_is_a_one_line_error(tmp_path: Path) -> None:
    done = CliRunner().invoke(main, ["unsafe-reset-all", "--home", str(tmp_path)])
    assert done.exit_code == 1
    assert done.output.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
