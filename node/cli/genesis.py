"""``learnchain genesis gentx|collect|validate``: a chain launched by organisations that share no
key and no data (node/home/genesis_ceremony.py)."""

from __future__ import annotations

import re
from pathlib import Path

import click

from learnchain.consensus.params import ChainParams, Mode
from learnchain.consensus.types import ChainId, Stake, Threshold
from learnchain.node.cli.options import (
    compute_learning_params,
    compute_pretrained,
    echo_json,
    home_option,
    learning_options,
    output_option,
    parse_threshold,
)
from learnchain.node.home.files import (
    DATA_DIR,
    GENESIS_FILE,
    KEY_FILE,
    ConfigError,
    NodeConfig,
    check_host_port,
    compute_genesis_digest,
    parse_time_ms,
    read_config,
    read_genesis_file,
    read_key,
    write_config,
    write_genesis_file,
    write_key,
)
from learnchain.node.home.genesis_ceremony import (
    CeremonyError,
    Gentx,
    check_gentx,
    check_gentxs,
    check_task_of,
    create_ceremony_genesis,
    find_entry_problem,
    read_gentx,
    sign_gentx,
    write_gentx,
)
from learnchain.node.home.testnet import VALIDATOR_BALANCE, VALIDATOR_STAKE

OWN_GENTX = "gentx.json"  # the home's copy of the gentx its key signed
AUTHORITY_DIR = "tls_authority"  # the organisation's own TLS authority (its key never leaves)


@click.group()
def genesis() -> None:
    """Launch a chain across organisations: gentx (each), collect (anyone), validate (each)."""


@genesis.command("gentx")
@home_option
@click.option("--chain-id", required=True, help="The chain the founders agreed to launch.")
@click.option("--moniker", required=True, help="This organisation's validator name.")
@click.option(
    "--endpoint", required=True, help="HOST:PORT the other validators dial (external address)."
)
@click.option("--listen", default="", help="HOST:PORT to listen on [default: 0.0.0.0:PORT].")
@click.option("--stake", type=click.IntRange(1), default=VALIDATOR_STAKE, show_default=True)
@click.option(
    "--data-file",
    type=click.Path(path_type=Path, exists=True),
    help="This organisation's private CSV, NPZ or Parquet file, or folder of images (one "
    "subfolder per class): only its summary (rows, per-feature sums; a folder's class names "
    "and image shape) goes into the gentx.",
)
@click.option("--label-column", default="label", show_default=True)
@click.option(
    "--task",
    default="tabular-mlp",
    show_default=True,
    help="The task whose reader reads --data-file (the chain's task).",
)
@click.option("--metrics", default="", help="HOST:PORT to serve Prometheus metrics on.")
@click.option(
    "--tls",
    is_flag=True,
    help="Mutual TLS: make this organisation's own certificate authority (its key stays in "
    "the home) and certify this node; the gentx carries the authority's certificate.",
)
@click.option(
    "--output-file",
    "-o",
    "output_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the gentx [default: gentx-MONIKER.json].",
)
def gentx(
    home: Path,
    chain_id: str,
    moniker: str,
    endpoint: str,
    listen: str,
    stake: int,
    data_file: Path | None,
    label_column: str,
    task: str,
    metrics: str,
    tls: bool,
    output_file: Path | None,
) -> None:
    """Sign this organisation's entry for a new chain's genesis (makes the home and its key
    when there are none). The gentx file is public: send it to whoever collects."""
    from learnchain.consensus.crypto import PrivateKey
    from learnchain.ml.errors import MLError
    from learnchain.node.home.files import DataSource
    from learnchain.node.home.task_setup import compute_file_source, summarise_data_file
    from learnchain.node.home.tls import CA_FILE, create_authority, issue_node_files

    if (home / GENESIS_FILE).exists():
        raise click.ClickException(f"{home} already has a genesis.json; a gentx is for a new chain")
    listen = listen or f"0.0.0.0:{endpoint.rpartition(':')[2]}"
    try:
        for where, address in (("--endpoint", endpoint), ("--listen", listen)):
            check_host_port(Path("gentx"), where, address)
        if metrics:
            check_host_port(Path("gentx"), "--metrics", metrics)
    except ConfigError as error:
        raise click.BadParameter(str(error).removeprefix("gentx: ")) from error
    try:
        summary = summarise_data_file(task, data_file, label_column) if data_file else None
    except MLError as error:
        raise click.ClickException(str(error)) from None
    (home / DATA_DIR).mkdir(parents=True, exist_ok=True)
    if (home / KEY_FILE).exists():
        key = read_key(home)
    else:
        key = PrivateKey.generate()
        write_key(home, key)
    authority = ""
    if tls:
        if not (home / AUTHORITY_DIR / CA_FILE).exists():
            create_authority(home / AUTHORITY_DIR, moniker)
        issue_node_files(home / AUTHORITY_DIR, home, key.address)
        authority = (home / AUTHORITY_DIR / CA_FILE).read_text()
    config = NodeConfig(
        moniker=moniker,
        listen=listen,
        external_address=endpoint,
        metrics=metrics,
        data=compute_file_source(data_file, label_column) if data_file else DataSource(),
        tls=tls,
    )
    try:
        signed = sign_gentx(
            key,
            Gentx(
                ChainId(chain_id),
                key.public_key,
                Stake(stake),
                endpoint,
                moniker,
                task if summary else "",
                label_column,
                summary,
                authority,
            ),
        )
        check_gentx(signed)
    except (ValueError, CeremonyError) as error:
        raise click.ClickException(str(error)) from None
    write_config(home, config)
    write_gentx(home / OWN_GENTX, signed)
    target = output_file or Path(f"gentx-{re.sub(r'[^A-Za-z0-9._-]+', '-', moniker)}.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    write_gentx(target, signed)
    rows = f", {summary.count} rows of {summary.features} features" if summary else ""
    click.echo(f"signed {target} for chain {chain_id}: {moniker} {key.address.hex()}{rows}")
    click.echo("next: send it to whoever collects (learnchain genesis collect), then validate")


@genesis.command("collect")
@click.argument(
    "gentx_files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False)
)
@click.option("--chain-id", required=True)
@click.option(
    "--output-file",
    "-o",
    "output_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path(GENESIS_FILE),
    show_default=True,
)
@click.option("--threshold", default="2/3", callback=parse_threshold, show_default=True)
@click.option(
    "--mode", type=click.Choice(["aggregate", "solo"]), default="aggregate", show_default=True
)
@click.option("--task", default=None, help="The chain's task [default: tabular-mlp with data].")
@click.option("--task-param", "task_params", multiple=True, metavar="KEY=VALUE")
@click.option(
    "--task-path",
    "task_path",
    multiple=True,
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    metavar="DIR",
)
@click.option(
    "--pretrained", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None
)
@click.option("--seed", type=int, default=0, show_default=True, help="The initial model's seed.")
@click.option(
    "--balance",
    type=click.IntRange(0),
    default=VALIDATOR_BALANCE,
    show_default=True,
    help="Tokens each founding validator's account holds at genesis.",
)
@click.option("--genesis-time", default="", help="ISO 8601 [default: now].")
@learning_options
@output_option
def collect(
    gentx_files: tuple[Path, ...],
    chain_id: str,
    output_file: Path,
    threshold: Threshold,
    mode: str,
    task: str | None,
    task_params: tuple[str, ...],
    task_path: tuple[Path, ...],
    pretrained: Path | None,
    seed: int,
    balance: int,
    genesis_time: str,
    output: str,
) -> None:
    """Make genesis.json from the founders' gentx files and the chain's parameters."""
    from learnchain.ml.errors import MLError, PluginImportError
    from learnchain.ml.plugins import add_plugin_folders
    from learnchain.node.home.task_setup import compute_summarised_task_config

    params = compute_learning_params(ChainParams(threshold=threshold, mode=Mode(mode)))
    try:
        time_ms = parse_time_ms(genesis_time) if genesis_time else None
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 time: {genesis_time!r}") from None
    try:
        named = [(path, read_gentx(path)) for path in gentx_files]
        check_gentxs(named, chain_id)
    except CeremonyError as error:
        raise click.ClickException(str(error)) from None
    add_plugin_folders(task_path)
    base = compute_pretrained(pretrained)
    summaries = [(str(path), g.data) for path, g in named if g.data is not None]
    try:
        task_config = compute_summarised_task_config(task, list(task_params), summaries, seed, base)
        check_task_of(named, task_config.name)
    except PluginImportError as error:
        raise click.ClickException(f"{error}; give its folder with --task-path DIR") from None
    except (MLError, CeremonyError) as error:
        raise click.ClickException(str(error)) from None
    made = create_ceremony_genesis(
        chain_id, [g for _, g in named], task_config, params, balance, time_ms, base
    )
    output_file.parent.mkdir(parents=True, exist_ok=True)
    write_genesis_file(output_file, made)
    digest = compute_genesis_digest(output_file.read_bytes())
    total = sum(g.stake for _, g in named)
    rows = sum(g.data.count for _, g in named if g.data is not None)
    if output == "json":
        echo_json(
            {
                "genesis": str(output_file),
                "sha256": digest,
                "chain_id": chain_id,
                "validators": [
                    {"moniker": g.moniker, "address": g.address.hex(), "stake": g.stake}
                    for _, g in named
                ],
                "task": task_config.name,
                "rows": rows,
            }
        )
        return
    click.echo(f"wrote {output_file} for chain {chain_id} ({task_config.name}):")
    for _, g in named:
        click.echo(f"  {g.moniker:20} {g.address.hex()}  stake {g.stake} ({g.stake / total:.0%})")
    if summaries:
        click.echo(
            f"  data: {task_config.features} features, {task_config.classes} classes, "
            f"{rows} rows in all (standardised with their pooled statistics)"
        )
    click.echo(f"sha256 {digest}")
    click.echo("next: send it to every founder; each runs learnchain genesis validate")


@genesis.command("validate")
@click.argument("genesis_file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@home_option
def validate(genesis_file: Path, home: Path) -> None:
    """Check a collected genesis against this organisation's gentx and data, and install it
    in the home (peers: the other founders' endpoints; TLS: every founder's authority)."""
    from learnchain.ml.errors import MLError
    from learnchain.ml.tasks import get_task
    from learnchain.node.home.files import set_config_value
    from learnchain.node.home.tls import CA_FILE, TLS_DIR

    try:
        made = read_genesis_file(genesis_file)
        genesis_json = genesis_file.read_bytes()
        mine = read_gentx(home / OWN_GENTX)
        key = read_key(home)
        config = read_config(home)
    except (ConfigError, CeremonyError) as error:
        raise click.ClickException(str(error)) from None
    if key.public_key != mine.public_key:
        raise click.ClickException(f"{home / OWN_GENTX}: signed by another key than this home's")
    problem = find_entry_problem(made, mine)
    if problem is not None:
        raise click.ClickException(f"{genesis_file}: {problem}")
    if config.data.kind == "file":
        try:
            get_task(made.task).load_data(Path(config.data.path), config.data.label_column)
        except MLError as error:
            raise click.ClickException(
                f"this node's data does not fit the genesis: {error}"
            ) from None
    target = home / GENESIS_FILE
    if target.exists() and target.read_bytes() != genesis_json:
        raise click.ClickException(f"{target} exists and differs; this home has another chain")
    target.write_bytes(genesis_json)
    peers = [
        v.endpoint for v in made.genesis.validators if v.public_key != key.public_key and v.endpoint
    ]
    if not config.persistent_peers and peers:
        set_config_value(home, "persistent_peers", ",".join(peers))
    if made.tls_roots:
        (home / TLS_DIR / CA_FILE).write_text("".join(made.tls_roots))
    digest = compute_genesis_digest(genesis_json)
    click.echo(
        f"{genesis_file}: {mine.moniker} is in it unchanged (stake {mine.stake}, "
        f"{mine.endpoint}); {len(made.genesis.validators)} validators"
    )
    click.echo(f"sha256 {digest} (compare it with every other founder's before starting)")
    click.echo(f"next: learnchain start --home {home}")
