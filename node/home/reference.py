"""The configuration reference of the documentation site, generated from the dataclasses that
read config.toml and genesis.json, so the page cannot drift from the code.

Each field's description is the comment beside it or the comment lines above it in the source.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import inspect
import io
import textwrap
import tokenize
from typing import Any

from learnchain.consensus.engine import TimeoutConfig
from learnchain.consensus.params import ChainParams
from learnchain.ml.config import TaskConfig
from learnchain.node.home.files import DataSource, NodeConfig

# the genesis's top-level keys (files.genesis_to_json); a key missing here fails the tests
GENESIS_KEYS = {
    "chain_id": "the chain's name; every signature covers it",
    "params": "the consensus and incentive parameters: the table below",
    "validators": "the founding validators: public key, address, stake, endpoint and moniker",
    "accounts": "the balances at genesis: address and tokens",
    "initial_model_hash": "the canonical hash of the task's initial model (§5)",
    "genesis_time": "the chain's start (RFC 3339, UTC); block 1's time is one ms later",
    "task": "the learning task: the table below",
    "tls_roots": "PEM certificates of the founders' TLS authorities (genesis ceremony with TLS)",
}


def compute_field_comments(cls: type) -> dict[str, str]:
    """Each field's comment in ``cls``'s source: the one beside it, else the lines above it."""
    source = textwrap.dedent(inspect.getsource(cls))
    lines = source.splitlines()
    trailing: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            trailing[token.start[0]] = token.string.lstrip("#").strip()
    comments: dict[str, str] = {}
    body = ast.parse(source).body[0]
    assert isinstance(body, ast.ClassDef)
    for statement in body.body:
        if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
            continue
        row = statement.lineno
        if row in trailing and not lines[row - 1].lstrip().startswith("#"):
            comments[statement.target.id] = trailing[row]
            continue
        above: list[str] = []
        while row - 1 - len(above) >= 1 and lines[row - 2 - len(above)].lstrip().startswith("#"):
            above.insert(0, trailing[row - 1 - len(above)])
        comments[statement.target.id] = " ".join(above)
    return comments


def format_default(value: Any) -> str:
    """A default as it is written in the file."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, tuple | list):
        return "`[]`" if not value else f"`{list(value)}`"
    if value is None:
        return "none"
    return f"`{value}`"


def get_default(field: dataclasses.Field[Any]) -> Any:
    """A field's default value."""
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def compute_field_table(cls: type, prefix: str = "", skip: tuple[str, ...] = ()) -> str:
    """A markdown table of a dataclass's fields: name, type, default and meaning."""
    comments = compute_field_comments(cls)
    rows = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        default = get_default(field)
        if dataclasses.is_dataclass(default):
            continue
        meaning = comments.get(field.name, "").replace("|", "\\|")
        rows.append(
            f"| `{prefix}{field.name}` | `{field.type}` | {format_default(default)} | {meaning} |"
        )
    return "\n".join(rows)


def compute_config_reference() -> str:
    """The page for config.toml."""
    sections = [
        "# config.toml\n",
        "Every field of a node's `HOME/config.toml` (`learnchain config get|set` reads and "
        "changes one). Generated from `NodeConfig` in `learnchain/node/home/files.py`; a field's "
        "meaning is its comment there.\n",
        "## Top level\n",
        compute_field_table(NodeConfig),
        "\n## `[timeouts]`\n",
        "Milliseconds; each step's timeout grows by its delta every round (Algorithm 1's "
        "`timeoutPropose(r)` and the others).\n",
        compute_field_table(TimeoutConfig, "timeouts."),
        "\n## `[data]`\n",
        "Where the node's private data comes from.\n",
        compute_field_table(DataSource, "data."),
    ]
    return "\n".join(sections) + "\n"


def compute_genesis_reference() -> str:
    """The page for genesis.json."""
    top = ["| key | meaning |", "|---|---|"]
    top += [f"| `{key}` | {meaning} |" for key, meaning in GENESIS_KEYS.items()]
    sections = [
        "# genesis.json\n",
        "The chain's first state: every node of a chain holds the same file (`learnchain genesis "
        "validate` prints its sha256 to compare). Generated from `ChainParams` "
        "(`learnchain/consensus/params.py`) and `TaskConfig` (`learnchain/ml/config.py`).\n",
        "## Top level\n",
        "\n".join(top),
        "\n## `params`\n",
        '`threshold` is written as a fraction, `"2/3"` or `"1/2"`.\n',
        compute_field_table(ChainParams, "params."),
        "\n## `task`\n",
        compute_field_table(TaskConfig, "task."),
    ]
    return "\n".join(sections) + "\n"
