"""``learnchain keys add|list|show``: the node's own key and named account keys."""

from __future__ import annotations

from pathlib import Path

import click

from learnchain.consensus.crypto import PrivateKey
from learnchain.node.cli.options import echo_json, home_option, output_option
from learnchain.node.cli.run import emit
from learnchain.node.home.files import ConfigError
from learnchain.node.home.keyring import (
    VALIDATOR_KEY_NAME,
    add_key,
    compute_key_path,
    get_key,
    get_keys,
)


def describe_key(name: str, key: PrivateKey) -> dict[str, str]:
    """What ``keys`` prints of one key (never the private part)."""
    return {"name": name, "address": key.address.hex(), "public_key": key.public_key.hex()}


@click.group()
def keys() -> None:
    """Keys that sign transactions: the node's own (``validator``) and named account keys."""


@keys.command("add")
@click.argument("name")
@home_option
@output_option
def keys_add(name: str, home: Path, output: str) -> None:
    """Make a new key called NAME in the home's keyring (sign with it: ``tx ... --from NAME``)."""
    new_home = not home.exists()
    try:
        key = add_key(home, name)
    except ConfigError as error:
        raise click.ClickException(str(error)) from error
    emit(output, describe_key(name, key) | {"file": str(compute_key_path(home, name))})
    if new_home:
        click.echo(
            f"created {home} for the keyring (give --home or set $LEARNCHAIN_HOME for another)",
            err=True,
        )


@keys.command("list")
@home_option
@output_option
def keys_list(home: Path, output: str) -> None:
    """Every key of the home, by name."""
    if not home.is_dir():
        raise click.ClickException(
            f"no home at {home} (give --home, set $LEARNCHAIN_HOME, or `learnchain keys add`)"
        )
    try:
        found = get_keys(home)
    except ConfigError as error:
        raise click.ClickException(str(error)) from error
    if output == "json":
        echo_json({"keys": [describe_key(name, key) for name, key in found]})
        return
    for name, key in found:
        click.echo(f"{name:<20} {key.address.hex()}")


@keys.command("show")
@click.argument("name", default=VALIDATOR_KEY_NAME)
@click.option(
    "--address", "-a", "address_only", is_flag=True, help="Print only the address (for scripts)."
)
@home_option
@output_option
def keys_show(name: str, address_only: bool, home: Path, output: str) -> None:
    """The address and public key of NAME (default: the node's own key)."""
    try:
        key = get_key(home, name)
    except ConfigError as error:
        raise click.ClickException(str(error)) from error
    if address_only:
        click.echo(key.address.hex())
        return
    emit(output, describe_key(name, key))
