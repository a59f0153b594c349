"""``learnchain dashboard``: serve a live web page of a node's chain (node/rpc/dashboard.py)."""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path

import click

from learnchain.node.cli.options import home_option
from learnchain.node.cli.run import node_option, open_channel, resolve_node
from learnchain.node.home.files import ConfigError, check_host_port
from learnchain.node.rpc.dashboard import Baselines, ChainView, start_dashboard
from learnchain.proto import learnchain_pb2_grpc as pb_grpc

DEFAULT_DASHBOARD = "127.0.0.1:26670"


def read_baselines(path: Path) -> Baselines:
    """``{"alone": [...], "pooled": x}`` from a JSON file; a bad one is a one-line error."""
    try:
        raw = json.loads(path.read_text())
        return Baselines([float(a) for a in raw.get("alone", [])], raw.get("pooled"))
    except (OSError, ValueError, TypeError, AttributeError) as error:
        raise click.BadParameter(f"{path}: {error}", param_hint="--baselines") from None


def check_listen(_ctx: click.Context | None, _param: click.Parameter | None, value: str) -> str:
    """--listen HOST:PORT."""
    try:
        check_host_port(Path("dashboard"), "--listen", value)
    except ConfigError as error:
        raise click.BadParameter(str(error).removeprefix("dashboard: ")) from None
    return value


def serve_dashboard(address: str, listen: str, baselines: Baselines | None) -> None:
    """Serve the page for the node at ``address`` on ``listen`` (in the background)."""
    view = ChainView(pb_grpc.QueryStub(open_channel(address)), baselines)
    try:
        start_dashboard(listen, view)
    except OSError as error:
        raise click.ClickException(
            f"cannot serve the dashboard on {listen}: {error.strerror}"
        ) from None


@click.command()
@node_option
@home_option
@click.option("--listen", default=DEFAULT_DASHBOARD, show_default=True, callback=check_listen)
@click.option(
    "--baselines",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help='JSON {"alone": [accuracy, ...], "pooled": accuracy} to draw beside the chain.',
)
def dashboard(node: str | None, home: Path, listen: str, baselines: Path | None) -> None:
    """Serve a live web page of the chain: height, validators, votes, scores, faults."""
    address = resolve_node(node, home)
    serve_dashboard(address, listen, None if baselines is None else read_baselines(baselines))
    click.echo(f"the dashboard of {address} is at http://{listen}/ (Ctrl-C stops it)")
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
