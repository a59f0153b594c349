"""The files a node owns: config.toml, genesis.json and its Ed25519 key file.

Malformed files give a ``ConfigError`` naming the file and the field.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import stat
import tomllib
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from learnchain.consensus.crypto import PrivateKey, compute_address, is_valid_public_key
from learnchain.consensus.engine import TimeoutConfig
from learnchain.consensus.params import MODES, ChainParams, Genesis, GenesisValidator
from learnchain.consensus.types import (
    ADDRESS_LENGTH,
    HASH_LENGTH,
    PUBLIC_KEY_LENGTH,
    SEED_LENGTH,
    Address,
    ChainId,
    Hash,
    PublicKey,
    Stake,
    Threshold,
    TimeMs,
    Tokens,
)
from learnchain.ml.config import PRECISIONS, TaskConfig, is_device_name
from learnchain.ml.errors import MLError

CONFIG_FILE = "config.toml"
LOG_LEVELS = ("debug", "info", "warning", "error")
GENESIS_FILE = "genesis.json"
KEY_FILE = "node_key.json"
DATA_DIR = "data"


TRAINERS = ("thread", "process", "torchrun")


class ConfigError(ValueError):
    """A node file that cannot be used; the message names the file and field."""


@dataclass(frozen=True)
class DataSource:
    """Where the node's private data comes from."""

    kind: str = "digits"  # "digits" (a built-in shard) or "file" (the operator's CSV/NPZ)
    party: int = 0  # digits: which shard this node holds (0 .. parties - 1)
    parties: int = 1  # digits: how many shards the digits are split into
    partition: str = "iid"  # digits: "iid" or "dirichlet:ALPHA" (non-IID label skew)
    seed: int = 0  # digits: the seed of the split (the same on every node of a testnet)
    path: str = ""  # file: a CSV, NPZ or Parquet file, or a folder of images (ml/data.py)
    label_column: str = "label"  # file: the column holding the label or target


@dataclass(frozen=True)
class NodeConfig:
    """config.toml."""

    moniker: str = "node"  # a human name for this node, shown in logs, status and the dashboard
    listen: str = "127.0.0.1:26656"  # host:port of the gRPC port (Peer and Query services)
    external_address: str = ""  # what peers dial; empty: the listen address unless it is 0.0.0.0
    persistent_peers: tuple[str, ...] = ()  # host:port of peers to dial at start and keep
    metrics: str = ""  # host:port for Prometheus; empty: off
    log_format: str = "text"  # "text" or "json" (one JSON object a line)
    log_level: str = "info"  # debug, info, warning or error
    retain_models: int = 10  # distinct committed models whose weights stay stored
    # CometBFT's create_empty_blocks: false makes a block only when there is something to
    # decide (transactions, evidence, a ready learning round); an idle chain rests.
    create_empty_blocks: bool = False
    create_empty_blocks_interval: int = 0  # ms: with no empty blocks, still make one this often
    timeouts: TimeoutConfig = TimeoutConfig()
    data: DataSource = DataSource()
    train: bool = True  # false: never propose or contribute model updates (blocks carry txs only)
    # false: precommit without appraising the block's contributions (§3.5), saving 2n + 1
    # evaluations of the vote set a block of n contributions; rewards then go by the other
    # validators' values, or equally when fewer than half of the stake appraises
    appraise: bool = True
    tls: bool = False  # mutual TLS on the port, with the files in home/tls (node/home/tls.py)
    # folders (absolute, or relative to the home) where a task or aggregation rule that the
    # genesis names MODULE:CLASS is looked for first, before PYTHONPATH
    task_path: tuple[str, ...] = ()
    # where this node trains and evaluates (ml/device.py): auto (CUDA, then MPS, then the
    # CPU), cpu, cuda, cuda:N or mps; aggregation, hashing and votes stay on the CPU
    device: str = "auto"
    threads: int = 1  # CPU threads for torch
    precision: str = "float32"  # bfloat16 or float16: mixed precision (autocast) for training
    # a safetensors file (absolute, or relative to the home) of the pretrained weights the
    # task's frozen base is loaded from; the genesis pins the base by its hash
    pretrained: str = ""
    # where the learner trains and evaluates: "thread" (in the validator's process) or
    # "process" (a child process the node supervises: a crash or out-of-memory there costs a
    # round, not the validator) or "torchrun" (each training a torchrun job of
    # trainer_processes processes, DDP on gloo; evaluation in a child process)
    trainer: str = "thread"
    trainer_memory_mb: int = 0  # "process", "torchrun": cap each training process's memory
    trainer_processes: int = 2  # "torchrun": processes per job
    attack: str = ""  # testing only: make this validator an adversary (ml.adversaries)
    byzantine: str = ""  # testing only: misbehave in consensus (node/chain/misbehaviour.py)


def _fail(path: Path, where: str, problem: str) -> ConfigError:
    return ConfigError(f"{path}: {where}: {problem}")


def _typed(path: Path, where: str, value: Any, expected: type) -> Any:
    if issubclass(expected, enum.Enum):
        try:
            return expected(value)
        except ValueError:
            choices = ", ".join(str(member.value) for member in expected)
            raise _fail(path, where, f"must be one of {choices}, got {value!r}") from None
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
        raise _fail(path, where, f"expected {expected.__name__}, got {value!r}")
    return value


def _read_section(path: Path, prefix: str, table: Any, cls: type) -> Any:
    if not isinstance(table, dict):
        raise _fail(path, prefix, "expected a table")
    defaults = cls()
    known = {f.name for f in fields(cls)}
    values = {}
    for key, value in table.items():
        if key not in known:
            raise _fail(path, f"{prefix}.{key}", "unknown field")
        default = getattr(defaults, key)
        if default is None:  # an optional whole number (params.target_score)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise _fail(path, f"{prefix}.{key}", f"expected a whole number, got {value!r}")
            values[key] = value
            continue
        values[key] = _typed(path, f"{prefix}.{key}", value, type(default))
    return cls(**values)


def read_config(home: Path) -> NodeConfig:
    """Load and check ``home/config.toml``."""
    path = home / CONFIG_FILE
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file (run `learnchain init` or `learnchain testnet`)"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the file ({error})") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error})") from error
    return _config_from_toml(path, raw)


CONFIG_SECTIONS = ("timeouts", "data")
LIST_FIELDS = {"persistent_peers": "host:port", "task_path": "folder"}  # and what they hold


def set_config_value(home: Path, key: str, text: str) -> NodeConfig:
    """Set one field of ``home/config.toml`` (``section.field`` inside [timeouts] or [data]) to
    ``text`` read as a TOML value (bare words are strings). The result is checked as ``start``
    reads it; a bad key or value raises ConfigError and writes nothing."""
    path = home / CONFIG_FILE
    current = read_config(home)
    raw = _config_to_toml(current)
    section, _, name = key.rpartition(".")
    if section and section not in CONFIG_SECTIONS:
        raise _fail(path, key, f"unknown section (known: {', '.join(CONFIG_SECTIONS)})")
    table = raw[section] if section else raw
    if name not in table:
        raise _fail(path, key, "unknown field")
    try:
        value = tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        value = text
    if name in LIST_FIELDS and isinstance(value, str):
        value = [p for p in value.split(",") if p]
    table[name] = value
    config = _config_from_toml(path, raw)
    write_config(home, config)
    return config


def get_config_value(home: Path, key: str) -> Any:
    """One field of ``home/config.toml`` (``section.field`` inside [timeouts] or [data])."""
    raw = _config_to_toml(read_config(home))
    section, _, name = key.rpartition(".")
    table = raw.get(section) if section else raw
    if not isinstance(table, dict) or name not in table or name in CONFIG_SECTIONS:
        raise _fail(home / CONFIG_FILE, key, "unknown field")
    return table[name]


MAX_TIMEOUT_MS = 3_600_000  # an hour: anything longer is a typo, not a network


def check_timeouts(path: Path, timeouts: TimeoutConfig) -> None:
    """Step timeouts and the gossip interval are positive, deltas and the commit wait not
    negative, and none is longer than an hour."""
    positive = ("propose", "propose_absent", "prevote", "precommit", "gossip")
    for f in fields(timeouts):
        value = getattr(timeouts, f.name)
        lowest = 1 if f.name in positive else 0
        if not lowest <= value <= MAX_TIMEOUT_MS:
            low = "positive" if lowest else "at least 0"
            raise _fail(
                path,
                f"timeouts.{f.name}",
                f"must be {low} and at most {MAX_TIMEOUT_MS} ms, got {value}",
            )


def _config_to_toml(config: NodeConfig) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for f in fields(NodeConfig):
        value = getattr(config, f.name)
        if f.name in CONFIG_SECTIONS:
            raw[f.name] = {g.name: getattr(value, g.name) for g in fields(value)}
        else:
            raw[f.name] = list(value) if isinstance(value, tuple) else value
    return raw


def _config_from_toml(path: Path, raw: dict[str, Any]) -> NodeConfig:
    top: dict[str, Any] = {}
    defaults = NodeConfig()
    for key, value in raw.items():
        if key == "timeouts":
            top[key] = _read_section(path, "timeouts", value, TimeoutConfig)
        elif key == "data":
            top[key] = _read_section(path, "data", value, DataSource)
        elif key in LIST_FIELDS:
            if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
                raise _fail(path, key, f"expected a list of {LIST_FIELDS[key]} strings")
            top[key] = tuple(value)
        elif key in {f.name for f in fields(NodeConfig)}:
            top[key] = _typed(path, key, value, type(getattr(defaults, key)))
        else:
            raise _fail(path, key, "unknown field")
    config = NodeConfig(**top)
    for where, address in [("listen", config.listen)] + [
        (f"persistent_peers[{i}]", p) for i, p in enumerate(config.persistent_peers)
    ]:
        check_host_port(path, where, address)
    if config.external_address:
        check_host_port(path, "external_address", config.external_address)
    if config.metrics:
        check_host_port(path, "metrics", config.metrics)
    if config.log_format not in ("text", "json"):
        raise _fail(path, "log_format", f"must be text or json, got {config.log_format!r}")
    if config.data.kind not in ("digits", "file"):
        raise _fail(path, "data.kind", f"must be digits or file, got {config.data.kind!r}")
    if config.data.kind == "digits" and not 0 <= config.data.party < config.data.parties:
        raise _fail(path, "data.party", f"must be in 0..{config.data.parties - 1}")
    if config.data.kind == "file" and not config.data.path:
        raise _fail(path, "data.path", "a file data source needs a path")
    if config.log_level not in LOG_LEVELS:
        raise _fail(path, "log_level", f"must be one of {', '.join(LOG_LEVELS)}")
    if config.retain_models < 1:
        raise _fail(path, "retain_models", "must be at least 1")
    if not is_device_name(config.device):
        raise _fail(
            path, "device", f"must be auto, cpu, cuda, cuda:N or mps, got {config.device!r}"
        )
    if config.threads < 1:
        raise _fail(path, "threads", f"must be at least 1, got {config.threads}")
    if config.trainer not in TRAINERS:
        raise _fail(
            path, "trainer", f"must be one of {', '.join(TRAINERS)}, got {config.trainer!r}"
        )
    if config.trainer_processes < 1:
        raise _fail(path, "trainer_processes", "must be at least 1")
    if config.trainer_memory_mb < 0:
        raise _fail(path, "trainer_memory_mb", "must be at least 0 (0: no cap)")
    if config.precision not in PRECISIONS:
        raise _fail(path, "precision", f"must be one of {', '.join(PRECISIONS)}")
    if not 0 <= config.create_empty_blocks_interval <= MAX_TIMEOUT_MS:
        raise _fail(
            path,
            "create_empty_blocks_interval",
            f"must be at least 0 and at most {MAX_TIMEOUT_MS} ms, "
            f"got {config.create_empty_blocks_interval}",
        )
    check_timeouts(path, config.timeouts)
    return config


UNSPECIFIED_HOSTS = ("0.0.0.0", "[::]", "::", "")


def get_task_folders(home: Path, config: NodeConfig) -> list[Path]:
    """The folders of ``task_path``, relative ones taken from the home."""
    return [home / folder for folder in config.task_path]


def get_advertised_address(config: NodeConfig) -> str:
    """The address other nodes can dial this node at ("" when it cannot be known)."""
    if config.external_address:
        return config.external_address
    host = config.listen.rpartition(":")[0]
    return "" if host in UNSPECIFIED_HOSTS else config.listen


def check_host_port(path: Path, where: str, value: str) -> None:
    """``host:port`` with a port in 1..65535."""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise _fail(path, where, f"expected host:port, got {value!r}")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def write_config(home: Path, config: NodeConfig) -> None:
    """Write ``home/config.toml``."""
    lines = ["# learnchain node configuration", ""]
    for f in fields(NodeConfig):
        if f.name in CONFIG_SECTIONS:
            continue
        lines.append(f"{f.name} = {_toml_value(getattr(config, f.name))}")
    for section in CONFIG_SECTIONS:
        lines += ["", f"[{section}]"]
        value = getattr(config, section)
        lines += [f"{f.name} = {_toml_value(getattr(value, f.name))}" for f in fields(value)]
    (home / CONFIG_FILE).write_text("\n".join(lines) + "\n")


# ---- genesis -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GenesisFile:
    """genesis.json: the consensus genesis and the learning task."""

    genesis: Genesis
    task: TaskConfig
    monikers: dict[str, str]
    # PEM certificates of the founding organisations' TLS authorities (a genesis ceremony with
    # mutual TLS): each node trusts peers certified by any of them
    tls_roots: tuple[str, ...] = ()


def genesis_to_json(g: GenesisFile) -> dict[str, Any]:
    """The JSON form of a genesis file."""
    p = g.genesis.params
    return {
        "chain_id": g.genesis.chain_id,
        "params": {
            "threshold": str(p.threshold),
            **{f.name: getattr(p, f.name) for f in fields(ChainParams) if f.name != "threshold"},
        },
        "validators": [
            {
                "public_key": v.public_key.hex(),
                "address": compute_address(v.public_key).hex(),
                "stake": v.stake,
                "endpoint": v.endpoint,
                "moniker": v.moniker,
            }
            for v in g.genesis.validators
        ],
        "accounts": [{"address": a.hex(), "balance": b} for a, b in g.genesis.accounts],
        "initial_model_hash": g.genesis.initial_model_hash.hex(),
        "genesis_time": format_time_ms(g.genesis.genesis_time_ms),
        "task": g.task.to_dict(),
        **({"tls_roots": list(g.tls_roots)} if g.tls_roots else {}),
    }


def write_genesis(home: Path, g: GenesisFile) -> None:
    """Write ``home/genesis.json``."""
    write_genesis_file(home / GENESIS_FILE, g)


def write_genesis_file(path: Path, g: GenesisFile) -> None:
    """Write a genesis file."""
    path.write_text(json.dumps(genesis_to_json(g), indent=2) + "\n")


def parse_hex(value: Any, length: int) -> bytes:
    """The ``length`` bytes a hex string spells; ValueError saying why not."""
    if not isinstance(value, str):
        raise ValueError("expected a hex string")
    try:
        data = bytes.fromhex(value)
    except ValueError:
        raise ValueError("not valid hex") from None
    if len(data) != length:
        raise ValueError(f"expected {length} bytes, got {len(data)}")
    return data


def _hex(path: Path, where: str, value: Any, length: int) -> bytes:
    try:
        return parse_hex(value, length)
    except ValueError as error:
        raise _fail(path, where, str(error)) from None


def compute_app_hash(task: TaskConfig) -> Hash:
    """The hash of the task, which the state root covers (every node runs the same task)."""
    from learnchain.consensus.crypto import compute_hash

    return compute_hash(json.dumps(task.to_dict(), sort_keys=True).encode())


def compute_genesis_digest(genesis_json: bytes) -> str:
    """SHA-256 (hex) of a genesis file's bytes: what operators compare out of band
    (``sha256sum genesis.json``)."""
    return hashlib.sha256(genesis_json).hexdigest()


def read_genesis(home: Path) -> GenesisFile:
    """Load and check ``home/genesis.json``."""
    return read_genesis_file(home / GENESIS_FILE)


def read_genesis_file(path: Path) -> GenesisFile:
    """Load and check a genesis file; ConfigError naming the file and the first bad field."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: not readable JSON ({error})") from error
    if not isinstance(raw, dict):
        raise _fail(path, "top level", "expected an object")
    for key in ("chain_id", "params", "validators", "accounts", "initial_model_hash", "task"):
        if key not in raw:
            raise _fail(path, key, "missing")
    chain_id = raw["chain_id"]
    if not isinstance(chain_id, str) or not 0 < len(chain_id) <= 64:
        raise _fail(path, "chain_id", "expected 1 to 64 characters")
    params_raw = dict(_typed(path, "params", raw["params"], dict))
    try:
        threshold = Threshold.parse(str(params_raw.pop("threshold", "2/3")))
    except ValueError as error:
        raise _fail(path, "params.threshold", str(error)) from error
    params = _read_section(path, "params", params_raw, ChainParams)
    params = replace(params, threshold=threshold)
    if params.mode not in MODES:
        raise _fail(path, "params.mode", f"must be one of {', '.join(MODES)}")
    try:
        params.validate()
    except ValueError as error:
        raise _fail(path, "params", str(error)) from error
    validators = []
    monikers = {}
    for i, v in enumerate(_typed(path, "validators", raw["validators"], list)):
        where = f"validators[{i}]"
        v = _typed(path, where, v, dict)
        public_key = PublicKey(
            _hex(path, f"{where}.public_key", v.get("public_key"), PUBLIC_KEY_LENGTH)
        )
        if not is_valid_public_key(public_key):
            raise _fail(path, f"{where}.public_key", "not an Ed25519 public key")
        stake = _typed(path, f"{where}.stake", v.get("stake"), int)
        if stake <= 0:
            raise _fail(path, f"{where}.stake", f"must be positive, got {stake}")
        endpoint = _typed(path, f"{where}.endpoint", v.get("endpoint", ""), str)
        moniker = _typed(path, f"{where}.moniker", v.get("moniker", ""), str)
        validators.append(GenesisValidator(public_key, Stake(stake), endpoint, moniker))
        monikers[compute_address(public_key).hex()] = moniker
    accounts = []
    for i, a in enumerate(_typed(path, "accounts", raw["accounts"], list)):
        where = f"accounts[{i}]"
        a = _typed(path, where, a, dict)
        address = Address(_hex(path, f"{where}.address", a.get("address"), ADDRESS_LENGTH))
        balance = _typed(path, f"{where}.balance", a.get("balance"), int)
        if balance < 0:
            raise _fail(path, f"{where}.balance", "must not be negative")
        accounts.append((address, Tokens(balance)))
    try:
        task = TaskConfig.from_dict(_typed(path, "task", raw["task"], dict))
    except MLError as error:
        raise ConfigError(f"{path}: {error}") from error
    genesis = Genesis(
        ChainId(chain_id),
        params,
        tuple(validators),
        tuple(accounts),
        Hash(_hex(path, "initial_model_hash", raw["initial_model_hash"], HASH_LENGTH)),
        compute_app_hash(task),
        _genesis_time(path, raw.get("genesis_time", format_time_ms(0))),
    )
    roots = _typed(path, "tls_roots", raw.get("tls_roots", []), list)
    for i, root in enumerate(roots):
        if not isinstance(root, str) or not root.startswith("-----BEGIN CERTIFICATE-----"):
            raise _fail(path, f"tls_roots[{i}]", "expected a PEM certificate")
    return GenesisFile(genesis, task, monikers, tuple(roots))


def format_time_ms(time_ms: int) -> str:
    """A Unix time in milliseconds as ISO 8601 UTC, e.g. 2026-11-30T10:00:00.000Z."""
    moment = datetime.fromtimestamp(time_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{time_ms % 1000:03d}Z"


def parse_time_ms(text: str) -> int:
    """ISO 8601 (with a zone, or UTC) as Unix milliseconds; ValueError when it is not one."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def _genesis_time(path: Path, value: Any) -> TimeMs:
    try:
        time_ms = parse_time_ms(_typed(path, "genesis_time", value, str))
    except ValueError:
        raise _fail(path, "genesis_time", f"not an ISO 8601 time: {value!r}") from None
    if time_ms < 0:
        raise _fail(path, "genesis_time", "must not be before 1970")
    return TimeMs(time_ms)


# ---- keys ----------------------------------------------------------------------------------


def write_key(home: Path, key: PrivateKey) -> None:
    """Write the node's key file."""
    write_key_file(home / KEY_FILE, key)


def write_key_file(path: Path, key: PrivateKey) -> None:
    """Write a key file with mode 0600 (created that way, never world-readable)."""
    payload = json.dumps(
        {
            "address": key.address.hex(),
            "public_key": key.public_key.hex(),
            "private_key": key.seed_bytes().hex(),
        },
        indent=2,
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(payload + "\n")
    os.chmod(path, 0o600)


def read_key(home: Path) -> PrivateKey:
    """Load ``home``'s node key."""
    return read_key_file(home / KEY_FILE)


def read_key_file(path: Path) -> PrivateKey:
    """Load a key file, refusing one that others can read."""
    try:
        mode = path.stat().st_mode
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: not readable JSON ({error})") from error
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path}: permissions {oct(mode & 0o777)} are too open; run chmod 600")
    if not isinstance(raw, dict):
        raise _fail(path, "top level", "expected an object")
    key = PrivateKey.from_seed(_hex(path, "private_key", raw.get("private_key"), SEED_LENGTH))
    if raw.get("public_key") != key.public_key.hex():
        raise _fail(path, "public_key", "does not match private_key")
    return key
