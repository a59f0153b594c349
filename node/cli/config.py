"""``learnchain config get|set``: read and change one field of a node's config.toml."""

from __future__ import annotations

from pathlib import Path

import click

from learnchain.node.cli.options import echo_json, home_option, output_option
from learnchain.node.home.files import ConfigError, get_config_value, set_config_value


@click.group()
def config() -> None:
    """Read or change a node's config.toml (KEY is `field` or `timeouts.field`, `data.field`)."""


@config.command("get")
@click.argument("key")
@home_option
@output_option
def get(key: str, home: Path, output: str) -> None:
    """Print one field."""
    try:
        value = get_config_value(home, key)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    if output == "json":
        echo_json({"key": key, "value": value})
    else:
        click.echo(str(value).lower() if isinstance(value, bool) else value)  # as TOML writes it


@config.command("set")
@click.argument("key")
@click.argument("value")
@home_option
def set_(key: str, value: str, home: Path) -> None:
    """Set one field (VALUE as in TOML: true, 3000, "text"; a bare word is text). The file is
    checked as `learnchain start` reads it, and is left unchanged when the value is bad."""
    try:
        set_config_value(home, key, value)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
