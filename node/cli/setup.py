"""``learnchain init``, ``learnchain testnet`` and ``learnchain keys show``."""

from __future__ import annotations

from pathlib import Path

import click

from consensus.types import Threshold
from ml.config import BUILTIN_TASKS
from node.cli.options import echo_json, parse_threshold
from node.files import ConfigError, read_key
from node.testnet import TestnetSpec, create_single_node, create_testnet


@click.command()
@click.option("--home", type=click.Path(path_type=Path), required=True)
@click.option("--moniker", required=True)
@click.option("--chain-id", default="learnchain-local", show_default=True)
def init(home: Path, moniker: str, chain_id: str) -> None:
    """Create a node home: key, config.toml and a one-validator genesis."""
    try:
        key = create_single_node(home, moniker, chain_id)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"initialised {home} (validator {key.address.hex()})")


def _check_partition(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    from ml.data import parse_partition
    from ml.errors import DataError

    try:
        parse_partition(value)
    except DataError as error:
        raise click.BadParameter(str(error)) from error
    return value


@click.command()
@click.option("--validators", type=click.IntRange(1, 100), required=True)
@click.option("--output", type=click.Path(path_type=Path), required=True)
@click.option("--threshold", default="2/3", callback=parse_threshold, show_default=True)
@click.option(
    "--mode", type=click.Choice(["aggregate", "solo"]), default="aggregate", show_default=True
)
@click.option("--task", type=click.Choice(BUILTIN_TASKS), default="digits-mlp", show_default=True)
@click.option("--partition", default="iid", callback=_check_partition, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--base-port", type=click.IntRange(1024, 65000), default=26656, show_default=True)
@click.option("--chain-id", default="learnchain-testnet", show_default=True)
def testnet(
    validators: int,
    output: Path,
    threshold: Threshold,
    mode: str,
    task: str,
    partition: str,
    seed: int,
    base_port: int,
    chain_id: str,
) -> None:
    """Create homes for a local testnet of N validators sharing one genesis."""
    spec = TestnetSpec(
        validators, output, chain_id, threshold, mode, task, partition, seed, base_port
    )
    try:
        homes = create_testnet(spec)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"created {len(homes)} validator homes in {output}:")
    for home in homes:
        click.echo(f"  learnchain start --home {home}")


@click.group()
def keys() -> None:
    """The node's key."""


@keys.command("show")
@click.option("--home", type=click.Path(path_type=Path), required=True)
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def keys_show(home: Path, output: str) -> None:
    """Show the node's address and public key."""
    try:
        key = read_key(home)
    except ConfigError as error:
        raise click.ClickException(str(error)) from error
    if output == "json":
        echo_json({"address": key.address.hex(), "public_key": key.public_key.hex()})
    else:
        click.echo(f"address     {key.address.hex()}\npublic key  {key.public_key.hex()}")
