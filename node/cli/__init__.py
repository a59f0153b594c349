"""The ``learnchain`` command line (click)."""

from __future__ import annotations

import click

from node.cli.chain_tx import model, tx
from node.cli.config import config
from node.cli.demo import demo
from node.cli.run import query, start, unsafe_reset_all
from node.cli.setup import init, keys, testnet, tls
from node.cli.simulate import simulate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="learnchain")
def main() -> None:
    """learnchain: validators that train one shared model on a proof-of-stake chain."""


main.add_command(init)
main.add_command(start)
main.add_command(query)
main.add_command(tx)
main.add_command(model)
main.add_command(testnet)
main.add_command(keys)
main.add_command(simulate)
main.add_command(demo)
main.add_command(config)
main.add_command(unsafe_reset_all)
main.add_command(tls)
