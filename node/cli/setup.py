"""``learnchain init``, ``learnchain testnet`` and ``learnchain keys show``."""

from __future__ import annotations

from pathlib import Path

import click

from learnchain.consensus.engine import TimeoutConfig
from learnchain.consensus.params import ChainParams, Mode
from learnchain.consensus.types import Threshold
from learnchain.node.cli.options import (
    OUTPUT_FORMATS,
    compute_learning_params,
    compute_pretrained,
    compute_task_option,
    compute_task_path,
    echo_json,
    home_option,
    learning_options,
    parse_threshold,
    task_options,
    vote_relay_option,
)
from learnchain.node.home.files import (
    MAX_TIMEOUT_MS,
    ConfigError,
    DataSource,
    NodeConfig,
    check_host_port,
    compute_genesis_digest,
    get_advertised_address,
    read_config,
    read_genesis,
    read_key,
)
from learnchain.node.home.task_setup import compute_file_source
from learnchain.node.home.testnet import (
    CONTAINER_METRICS_PORT,
    TestnetSpec,
    create_joining_node,
    create_single_node,
    create_testnet,
)


@click.command()
@home_option
@click.option("--moniker", required=True)
@click.option("--chain-id", default="learnchain-local", show_default=True, help="For a new chain.")
@click.option(
    "--genesis",
    "genesis_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Join the chain of this genesis.json instead of starting a new chain.",
)
@click.option("--genesis-from", help="Join the chain of the node at HOST:PORT (its genesis.json).")
@click.option("--peers", default="", help="HOST:PORT,... to connect to (default: --genesis-from).")
@click.option("--listen", default="127.0.0.1:26656", show_default=True)
@click.option("--external-address", default="", help="HOST:PORT peers dial, if not --listen.")
@click.option("--metrics", default="", help="HOST:PORT to serve Prometheus metrics on.")
@click.option("--shard", default="", help="Built-in digits: only shard I of N, e.g. 4/5.")
@click.option("--partition", default="iid", show_default=True, help="How --shard splits digits.")
@click.option(
    "--data-file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Train and vote on this CSV or NPZ file (tabular-mlp chains).",
)
@task_options
@learning_options
def init(
    home: Path,
    moniker: str,
    chain_id: str,
    genesis_file: Path | None,
    genesis_from: str | None,
    peers: str,
    listen: str,
    external_address: str,
    metrics: str,
    shard: str,
    partition: str,
    data_file: Path | None,
    task: str | None,
    task_params: tuple[str, ...],
    label_column: str,
    task_path: tuple[Path, ...],
    pretrained: Path | None,
) -> None:
    """Create a node home: a key, config.toml and genesis.json.

    Without --genesis or --genesis-from it starts a new one-validator chain. With either, the
    node joins that chain as a full node; `learnchain tx stake` makes it a validator.
    """
    if genesis_file is None and genesis_from is None:
        params = compute_learning_params(ChainParams())
        if shard:
            raise click.UsageError(
                "--shard splits the digits of a chain that exists; not for a new one"
            )
        files = [data_file] if data_file is not None else []
        base = compute_pretrained(pretrained)
        task_config = compute_task_option(
            task, task_params, files, label_column, 0, task_path, base
        )
        data = compute_file_source(data_file, label_column) if data_file else None
        try:
            key = create_single_node(
                home,
                moniker,
                chain_id,
                listen,
                params,
                task_config,
                data,
                compute_task_path(task_path),
                base,
            )
        except ValueError as error:
            raise click.ClickException(str(error)) from error
        click.echo(f"initialised {home} (validator {key.address.hex()})")
        return
    if genesis_file is not None and genesis_from is not None:
        raise click.UsageError("give --genesis or --genesis-from, not both")
    if task is not None or task_params:
        raise click.UsageError(
            "--task and --task-param are for a new chain; the genesis names its task"
        )
    peer_list = tuple(p for p in peers.split(",") if p) or ((genesis_from,) if genesis_from else ())
    config = NodeConfig(
        moniker=moniker,
        listen=listen,
        external_address=external_address,
        persistent_peers=peer_list,
        metrics=metrics,
        data=compute_data_source(shard, partition, data_file, label_column),
        task_path=compute_task_path(task_path),
        pretrained=compute_pretrained(pretrained),
    )
    try:
        for where, address in [("--listen", listen)] + [("--peers", p) for p in peer_list]:
            check_host_port(Path("init"), where, address)
        for where, optional in (("--external-address", external_address), ("--metrics", metrics)):
            if optional:
                check_host_port(Path("init"), where, optional)
    except ConfigError as error:
        raise click.BadParameter(str(error).removeprefix("init: ")) from error
    if genesis_from is not None:
        from learnchain.node.cli.run import call
        from learnchain.proto import learnchain_pb2 as pb

        genesis_json = call(genesis_from, "Genesis", pb.GenesisRequest()).genesis_json
    else:
        assert genesis_file is not None
        genesis_json = genesis_file.read_bytes()
    try:
        key = create_joining_node(home, moniker, genesis_json, config)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    chain = read_genesis(home).genesis.chain_id
    digest = compute_genesis_digest(genesis_json)
    click.echo(f"initialised {home}: a full node of chain {chain} (address {key.address.hex()})")
    click.echo(f"genesis.json sha256 {digest} (compare it with the network's)")
    click.echo(f"next: learnchain start --home {home}, then fund {key.address.hex()} and stake")


def compute_data_source(
    shard: str, partition: str, data_file: Path | None, label_column: str = "label"
) -> DataSource:
    """--shard I/N and --partition, or --data-file."""
    if data_file is not None:
        if shard:
            raise click.UsageError("give --shard or --data-file, not both")
        return compute_file_source(data_file, label_column)
    if not shard:
        return DataSource()
    try:
        party, parties = (int(part) for part in shard.split("/"))
    except ValueError:
        raise click.BadParameter(f"--shard takes I/N, e.g. 4/5; got {shard!r}") from None
    if not 0 <= party < parties:
        raise click.BadParameter(f"--shard {shard}: I must be in 0..N-1")
    _check_partition(None, None, partition)
    return DataSource("digits", party, parties, partition)


def _check_partition(_ctx: click.Context | None, _param: click.Parameter | None, value: str) -> str:
    from learnchain.ml.data import parse_partition
    from learnchain.ml.errors import DataError

    try:
        parse_partition(value)
    except DataError as error:
        raise click.BadParameter(str(error)) from error
    return value


def _check_output_format(
    _ctx: click.Context | None, _param: click.Parameter | None, value: str
) -> str:
    if value not in OUTPUT_FORMATS:
        raise click.BadParameter(
            f"{value!r}: --output is the format of what testnet prints (text or json); "
            f"the homes' folder is --output-dir {value}"
        )
    return value


def _check_starting_ip(
    _ctx: click.Context | None, _param: click.Parameter | None, value: str
) -> str:
    import ipaddress

    if value:
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise click.BadParameter(f"not an IPv4 address: {value!r}") from None
    return value


@click.command()
@click.option("--validators", type=click.IntRange(1, 100), required=True)
@click.option(
    "--output-dir",
    "-o",
    "output_dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Where to make the homes (node0, node1, ...).",
)
@click.option(
    "--output",
    default="text",
    callback=_check_output_format,
    show_default=True,
    help="The format of what testnet prints: text or json.",
)
@click.option("--threshold", default="2/3", callback=parse_threshold, show_default=True)
@click.option(
    "--mode", type=click.Choice(["aggregate", "solo"]), default="aggregate", show_default=True
)
@task_options
@click.option(
    "--data-files",
    default="",
    metavar="F0,F1,...",
    help="One CSV or NPZ file per validator (its private data) instead of digits shards; "
    "the task's features and classes are taken from them.",
)
@click.option("--partition", default="iid", callback=_check_partition, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--base-port", type=click.IntRange(1024, 65000), default=26656, show_default=True)
@click.option(
    "--metrics-base-port",
    type=click.IntRange(0, 65000),
    default=None,
    help="Node I serves Prometheus metrics on this port + I (default: the base port + 1000; "
    f"containers and --starting-ip hosts: {CONTAINER_METRICS_PORT}); 0: no metrics.",
)
@click.option("--chain-id", default="learnchain-testnet", show_default=True)
@click.option(
    "--hostname-prefix",
    default="",
    help="Containers: node I listens on 0.0.0.0:BASE_PORT and is reached at PREFIXI:BASE_PORT.",
)
@click.option(
    "--starting-ip",
    default="",
    callback=_check_starting_ip,
    help="Node I listens on, and is reached at, this IPv4 address plus I (port BASE_PORT), "
    "e.g. 10.0.0.1 for hosts 10.0.0.1, 10.0.0.2, ...",
)
@click.option(
    "--create-empty-blocks/--no-create-empty-blocks",
    default=False,
    show_default=True,
    help="Make blocks with nothing in them (else the chain rests when there is nothing to do).",
)
@click.option(
    "--commit-timeout",
    type=click.IntRange(0, MAX_TIMEOUT_MS),
    default=TimeoutConfig().commit,
    show_default=True,
    help="Milliseconds to pause after each block (0: the fastest pace).",
)
@click.option(
    "--tls",
    is_flag=True,
    help="Mutual TLS between the nodes: a certificate authority in OUTPUT/tls_ca, a "
    "certificate for every node (the CLI then needs --home to reach a node).",
)
@learning_options
@vote_relay_option
def testnet(
    validators: int,
    output_dir: Path,
    output: str,
    threshold: Threshold,
    mode: str,
    task: str | None,
    task_params: tuple[str, ...],
    label_column: str,
    task_path: tuple[Path, ...],
    pretrained: Path | None,
    data_files: str,
    partition: str,
    seed: int,
    base_port: int,
    metrics_base_port: int | None,
    chain_id: str,
    hostname_prefix: str,
    starting_ip: str,
    create_empty_blocks: bool,
    commit_timeout: int,
    tls: bool,
    vote_relay_from: int,
) -> None:
    """Create homes for a local testnet of N validators sharing one genesis."""
    params = compute_learning_params(
        ChainParams(threshold=threshold, mode=Mode(mode), vote_relay_from=vote_relay_from)
    )
    files = [Path(f) for f in data_files.split(",") if f]
    if files and len(files) != validators:
        raise click.BadParameter(
            f"{len(files)} files for {validators} validators: give one each",
            param_hint="--data-files",
        )
    base = compute_pretrained(pretrained)
    task_config = compute_task_option(task, task_params, files, label_column, seed, task_path, base)
    spec = TestnetSpec(
        validators,
        output_dir,
        chain_id,
        task_config.name,
        partition,
        seed,
        base_port,
        metrics_base_port=base_port + 1000 if metrics_base_port is None else metrics_base_port,
        hostname_prefix=hostname_prefix,
        starting_ip=starting_ip,
        params=params,
        create_empty_blocks=create_empty_blocks,
        commit_timeout=commit_timeout,
        tls=tls,
        task_config=task_config,
        data_files=tuple(files),
        label_column=label_column,
        task_path=compute_task_path(task_path),
        pretrained=base,
    )
    try:
        homes = create_testnet(spec)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    configs = [read_config(home) for home in homes]
    if output == "json":
        echo_json(
            {
                "output_dir": str(output_dir),
                "chain_id": chain_id,
                "homes": [str(home) for home in homes],
                "addresses": [get_advertised_address(config) for config in configs],
                "metrics": [config.metrics for config in configs],
            }
        )
        return
    click.echo(f"created {len(homes)} validator homes in {output_dir}:")
    for home, config in zip(homes, configs, strict=True):
        address = get_advertised_address(config) or config.listen
        metrics = f", metrics http://{config.metrics}/metrics" if config.metrics else ""
        click.echo(f"  learnchain start --home {home}   (gRPC {address}{metrics})")


@click.group()
def tls() -> None:
    """Mutual TLS between nodes (node/home/tls.py)."""


@tls.command("issue")
@click.option(
    "--ca",
    "authority",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    required=True,
    help="The network's certificate authority (ca.pem and ca_key.pem; testnet --tls makes one).",
)
@home_option
def tls_issue(authority: Path, home: Path) -> None:
    """Certify a node for the network's mutual TLS and turn TLS on in its config."""
    from learnchain.node.home.files import set_config_value
    from learnchain.node.home.tls import TlsError, issue_node_files

    try:
        key = read_key(home)
        issue_node_files(authority, home, key.address)
        set_config_value(home, "tls", "true")
    except (ConfigError, TlsError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{home}: certified {key.address.hex()} by {authority}; tls = true")
