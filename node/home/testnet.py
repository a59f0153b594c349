"""Creating node homes: one node (``init``) or a local testnet of N validators (``testnet``)."""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from learnchain.consensus.crypto import PrivateKey, compute_address
from learnchain.consensus.engine import TimeoutConfig
from learnchain.consensus.params import ChainParams, Genesis, GenesisValidator
from learnchain.consensus.types import Address, ChainId, Hash, Stake, TimeMs, Tokens
from learnchain.ml.config import TaskConfig
from learnchain.node.home.files import (
    DATA_DIR,
    GENESIS_FILE,
    ConfigError,
    DataSource,
    GenesisFile,
    NodeConfig,
    compute_app_hash,
    read_genesis,
    write_config,
    write_genesis,
    write_key,
)
from learnchain.node.home.task_setup import compute_file_source
from learnchain.node.home.tls import create_authority, issue_node_files

VALIDATOR_STAKE = 1_000
VALIDATOR_BALANCE = 10_000
FAUCET_BALANCE = 1_000_000
FAUCET_KEY_FILE = "faucet_key.json"
CONTAINER_METRICS_PORT = 26660


@dataclass(frozen=True)
class TestnetSpec:
    """What ``learnchain testnet`` builds."""

    __test__ = False  # not a pytest test class

    validators: int
    output: Path
    chain_id: str = "learnchain-testnet"
    task: str = "digits-mlp"
    partition: str = "iid"
    seed: int = 0
    base_port: int = 26656
    metrics_base_port: int = 0  # node I serves metrics on this + I (0: none)
    host: str = "127.0.0.1"
    hostname_prefix: str = ""  # e.g. "node": node I is reached at nodeI:BASE_PORT (containers)
    starting_ip: str = ""  # e.g. "10.0.0.1": node I listens on 10.0.0.(1+I):BASE_PORT
    params: ChainParams = field(default_factory=ChainParams)  # threshold, mode, learning...
    create_empty_blocks: bool = False  # config.toml of every node
    commit_timeout: int = TimeoutConfig().commit  # ms, config.toml's timeouts.commit
    tls: bool = False  # a certificate authority in output/tls_ca, mutual TLS on every node
    task_config: TaskConfig | None = None  # else the task named by ``task``, with ``seed``
    data_files: tuple[Path, ...] = ()  # one per validator, instead of digits shards
    label_column: str = "label"
    task_path: tuple[str, ...] = ()  # config.toml's folders for a MODULE:CLASS task
    pretrained: str = ""  # config.toml's pretrained weights file for a frozen base (absolute)


AUTHORITY_DIR = "tls_ca"  # the testnet's certificate authority (``--tls``)


def compute_endpoint(i: int, base_port: int, host: str = "127.0.0.1", starting_ip: str = "") -> str:
    """Node ``i``'s address: STARTING_IP + i at the base port, or HOST at the base port + i."""
    if starting_ip:
        return f"{ipaddress.IPv4Address(starting_ip) + i}:{base_port}"
    return f"{host}:{base_port + i}"


def compute_metrics_address(spec: TestnetSpec, i: int) -> str:
    """Where node ``i`` serves Prometheus metrics: port 26660 of its own host (containers, one
    IP each) or the metrics base port + ``i`` on loopback; none with a zero metrics base port."""
    if not spec.metrics_base_port:
        return ""
    if spec.hostname_prefix:
        return f"0.0.0.0:{CONTAINER_METRICS_PORT}"
    if spec.starting_ip:
        return compute_endpoint(i, CONTAINER_METRICS_PORT, starting_ip=spec.starting_ip)
    return compute_endpoint(i, spec.metrics_base_port, spec.host)


def compute_testnet_endpoints(spec: TestnetSpec) -> list[str]:
    """Each validator's address: loopback ports from the base, one host each from the starting
    IP, or one hostname each."""
    if spec.hostname_prefix:
        return [f"{spec.hostname_prefix}{i}:{spec.base_port}" for i in range(spec.validators)]
    return [
        compute_endpoint(i, spec.base_port, spec.host, spec.starting_ip)
        for i in range(spec.validators)
    ]


def find_free_base_port(count: int, start: int = 27000, step: int = 50) -> int:
    """The first base port from ``start`` with ``count`` consecutive free loopback ports."""
    for base in range(start, 65000 - count, step):
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise ValueError(f"no {count} consecutive free loopback ports")


def compute_genesis_model(task: TaskConfig, pretrained: str = "") -> tuple[TaskConfig, Hash]:
    """The task with its frozen base pinned (``base_hash``, when the model freezes one) and the
    genesis model's canonical hash: the same on every machine for the task, seed and
    pretrained weights."""
    from learnchain.ml.codec import compute_weights_hash
    from learnchain.ml.device import LocalSettings
    from learnchain.ml.tasks import get_task

    built = get_task(task, LocalSettings(pretrained=pretrained))
    model = built.initial_model()
    pinned = replace(task, base_hash=built.compute_base_hash(model).hex())
    return pinned, Hash(compute_weights_hash(built.shared_state(model)))


def compute_initial_model_hash(task: TaskConfig, pretrained: str = "") -> Hash:
    """The genesis model's canonical hash (the same on every machine for the task and seed)."""
    return compute_genesis_model(task, pretrained)[1]


def compute_genesis_file(
    chain_id: ChainId,
    validators: list[GenesisValidator],
    accounts: list[tuple[Address, Tokens]],
    task: TaskConfig,
    params: ChainParams,
    genesis_time_ms: TimeMs,
    pretrained: str = "",
) -> GenesisFile:
    """A genesis with these validators bonded and these accounts funded (and the task's frozen
    base, if any, pinned from the ``pretrained`` file)."""
    task, model_hash = compute_genesis_model(task, pretrained)
    genesis = Genesis(
        chain_id,
        params,
        tuple(validators),
        tuple(accounts),
        model_hash,
        compute_app_hash(task),
        genesis_time_ms,
    )
    return GenesisFile(
        genesis, task, {compute_address(v.public_key).hex(): v.moniker for v in validators}
    )


def create_genesis(
    chain_id: str,
    validators: list[tuple[PrivateKey, str, str]],
    accounts: list[tuple[PrivateKey, int]],
    task: TaskConfig,
    params: ChainParams,
    pretrained: str = "",
) -> GenesisFile:
    """A genesis with each (key, endpoint, moniker) bonded and each (key, balance) funded."""
    return compute_genesis_file(
        ChainId(chain_id),
        [
            GenesisValidator(key.public_key, Stake(VALIDATOR_STAKE), endpoint, moniker)
            for key, endpoint, moniker in validators
        ],
        [(key.address, Tokens(balance)) for key, balance in accounts],
        task,
        params,
        TimeMs(int(time.time() * 1000)),
        pretrained,
    )


def create_testnet(spec: TestnetSpec) -> list[Path]:
    """Homes ``node0`` .. ``nodeN-1`` under ``spec.output``: config, key and genesis each."""
    if spec.validators < 1:
        raise ValueError("a testnet needs at least one validator")
    if spec.output.exists() and any(spec.output.iterdir()):
        raise ValueError(f"{spec.output} already exists and is not empty")
    keys = [PrivateKey.generate() for _ in range(spec.validators)]
    faucet = PrivateKey.generate()
    endpoints = compute_testnet_endpoints(spec)
    if spec.data_files and len(spec.data_files) != spec.validators:
        raise ValueError(
            f"{len(spec.data_files)} data files for {spec.validators} validators: give one each"
        )
    task = spec.task_config or TaskConfig(name=spec.task, seed=spec.seed)
    params = spec.params
    params.validate()
    genesis = create_genesis(
        spec.chain_id,
        [(k, e, f"node{i}") for i, (k, e) in enumerate(zip(keys, endpoints, strict=True))],
        [(k, VALIDATOR_BALANCE) for k in keys] + [(faucet, FAUCET_BALANCE)],
        task,
        params,
        spec.pretrained,
    )
    homes = []
    spec.output.mkdir(parents=True, exist_ok=True)
    write_key(spec.output, faucet)
    (spec.output / "node_key.json").rename(spec.output / FAUCET_KEY_FILE)
    for i, key in enumerate(keys):
        home = spec.output / f"node{i}"
        (home / DATA_DIR).mkdir(parents=True)
        config = NodeConfig(
            moniker=f"node{i}",
            listen=f"0.0.0.0:{spec.base_port}" if spec.hostname_prefix else endpoints[i],
            external_address=endpoints[i] if spec.hostname_prefix else "",
            persistent_peers=tuple(e for j, e in enumerate(endpoints) if j != i),
            metrics=compute_metrics_address(spec, i),
            data=compute_file_source(spec.data_files[i], spec.label_column)
            if spec.data_files
            else DataSource("digits", i, spec.validators, spec.partition, spec.seed),
            create_empty_blocks=spec.create_empty_blocks,
            timeouts=replace(TimeoutConfig(), commit=spec.commit_timeout),
            tls=spec.tls,
            task_path=spec.task_path,
            pretrained=spec.pretrained,
        )
        write_config(home, config)
        write_key(home, key)
        if spec.tls:
            if i == 0:
                create_authority(spec.output / AUTHORITY_DIR, spec.chain_id)
            issue_node_files(spec.output / AUTHORITY_DIR, home, key.address)
        write_genesis(home, genesis)
        homes.append(home)
    return homes


def create_joining_node(
    home: Path, moniker: str, genesis_json: bytes, config: NodeConfig
) -> PrivateKey:
    """A home for a node joining an existing chain: its own key and the chain's genesis.

    It starts as a full node (it follows the chain without voting) and becomes a validator
    once it stakes (``learnchain tx stake``).
    """
    if (home / "config.toml").exists():
        raise ValueError(f"{home} is already initialised")
    (home / DATA_DIR).mkdir(parents=True, exist_ok=True)
    (home / GENESIS_FILE).write_bytes(genesis_json)
    try:
        read_genesis(home)
    except ConfigError:
        (home / GENESIS_FILE).unlink()
        raise
    key = PrivateKey.generate()
    write_config(home, config)
    write_key(home, key)
    return key


def create_single_node(
    home: Path,
    moniker: str,
    chain_id: str,
    listen: str = "127.0.0.1:26656",
    params: ChainParams | None = None,
    task: TaskConfig | None = None,
    data: DataSource | None = None,
    task_path: tuple[str, ...] = (),
    pretrained: str = "",
) -> PrivateKey:
    """A home for one validator with its own genesis (``learnchain init``)."""
    if (home / "config.toml").exists():
        raise ValueError(f"{home} is already initialised")
    params = params or ChainParams()
    params.validate()
    (home / DATA_DIR).mkdir(parents=True, exist_ok=True)
    key = PrivateKey.generate()
    genesis = create_genesis(
        chain_id,
        [(key, listen, moniker)],
        [(key, VALIDATOR_BALANCE)],
        task or TaskConfig(),
        params,
        pretrained,
    )
    config = NodeConfig(
        moniker=moniker,
        listen=listen,
        data=data or DataSource(),
        task_path=task_path,
        pretrained=pretrained,
    )
    write_config(home, config)
    write_key(home, key)
    write_genesis(home, genesis)
    return key
