"""``learnchain version`` and ``learnchain completion``."""

from __future__ import annotations

import importlib.metadata
import platform

import click
from click.shell_completion import get_completion_class

from learnchain.node.cli.options import echo_json, output_option

COMPLETION_SHELLS = ("bash", "zsh", "fish")


def get_versions() -> dict[str, str]:
    """learnchain's version and those of the parts that decide what it computes."""
    versions = {"version": importlib.metadata.version("learnchain")}
    for name in ("torch", "grpcio", "protobuf"):
        versions[name] = importlib.metadata.version(name)
    versions["python"] = platform.python_version()
    return versions


@click.command()
@output_option
def version(output: str) -> None:
    """Print learnchain's version (with --output json, also torch's, gRPC's and Python's)."""
    versions = get_versions()
    if output == "json":
        echo_json(versions)
    else:
        click.echo(versions["version"])


@click.command()
@click.argument("shell", type=click.Choice(COMPLETION_SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the command completion script for SHELL.

    For example ``source <(learnchain completion bash)`` in ~/.bashrc.
    """
    root = ctx.find_root()
    assert isinstance(root.command, click.Command)
    completer = get_completion_class(shell)
    assert completer is not None
    click.echo(completer(root.command, {}, "learnchain", "_LEARNCHAIN_COMPLETE").source())
