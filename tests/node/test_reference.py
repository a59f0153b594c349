"""The configuration reference of the documentation site is generated from the dataclasses that
read the files: every field of config.toml and genesis.json is on the page, with a meaning, so a
field added without saying what it does fails here rather than leaving the page behind."""

from __future__ import annotations

import dataclasses
import re

from learnchain.consensus.crypto import PrivateKey
from learnchain.consensus.engine import TimeoutConfig
from learnchain.consensus.params import ChainParams
from learnchain.ml.config import TaskConfig
from learnchain.node.home.files import DataSource, GenesisFile, NodeConfig, genesis_to_json
from learnchain.node.home.reference import (
    GENESIS_KEYS,
    compute_config_reference,
    compute_field_comments,
    compute_genesis_reference,
)
from learnchain.node.home.testnet import create_genesis

CELL_EDGE = re.compile(r"(?<!\\)\|(?=(?:[^`]*`[^`]*`)*[^`]*$)")
DOCUMENTED = {
    "config.toml": [(NodeConfig, ""), (TimeoutConfig, "timeouts."), (DataSource, "data.")],
    "genesis.json": [(ChainParams, "params."), (TaskConfig, "task.")],
}


def get_row(page: str, name: str) -> list[str]:
    """The cells of a field's row on a reference page."""
    line = next(line for line in page.splitlines() if line.startswith(f"| `{name}` |"))
    # a pipe inside a code span (`int | None`) or escaped (\|) does not end a cell
    return [cell.strip() for cell in CELL_EDGE.split(line.strip().strip("|"))]


def test_every_field_of_both_files_is_on_its_page_with_a_meaning() -> None:
    pages = {"config.toml": compute_config_reference(), "genesis.json": compute_genesis_reference()}
    for file, classes in DOCUMENTED.items():
        for cls, prefix in classes:
            for field in dataclasses.fields(cls):
                if dataclasses.is_dataclass(field.default):
                    continue  # a section: its own table
                _name, _type, _default, meaning = get_row(pages[file], prefix + field.name)
                assert meaning, f"{file}: {prefix}{field.name} has no comment in {cls.__name__}"


def test_a_fields_meaning_is_its_comment_beside_it_or_above_it() -> None:
    comments = compute_field_comments(TaskConfig)
    assert comments["confidence"].startswith("z of the vote rule's one-sided bound")
    assert comments["verified_margin"].startswith("aggregate mode: a proposal checked to be")
    assert "cannot drift" not in comments["codec"]


def test_the_defaults_on_the_page_are_the_codes_defaults() -> None:
    page = compute_config_reference()
    assert get_row(page, "retain_models")[2] == f"`{NodeConfig().retain_models}`"
    assert get_row(page, "timeouts.propose")[2] == f"`{TimeoutConfig().propose}`"
    assert get_row(page, "create_empty_blocks")[2] == "`false`"


def test_every_top_level_key_of_a_genesis_is_described() -> None:
    key = PrivateKey.generate()
    genesis: GenesisFile = create_genesis(
        "reference-1", [(key, "127.0.0.1:26656", "node0")], [(key, 10)], TaskConfig(), ChainParams()
    )
    keys = set(genesis_to_json(dataclasses.replace(genesis, tls_roots=("PEM",))))
    assert keys == set(GENESIS_KEYS)
    page = compute_genesis_reference()
    assert all(f"| `{name}` |" in page for name in keys)
