"""The ``learnchain`` command line (click)."""

from __future__ import annotations

import click

from learnchain.node.cli.about import completion, version
from learnchain.node.cli.chain_tx import model, tx
from learnchain.node.cli.config import config
from learnchain.node.cli.dashboard import dashboard
from learnchain.node.cli.demo import demo
from learnchain.node.cli.genesis import genesis
from learnchain.node.cli.keys import keys
from learnchain.node.cli.run import query, start, unsafe_reset_all
from learnchain.node.cli.setup import init, testnet, tls
from learnchain.node.cli.simulate import simulate


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
main.add_command(genesis)
main.add_command(keys)
main.add_command(simulate)
main.add_command(demo)
main.add_command(config)
main.add_command(unsafe_reset_all)
main.add_command(tls)
main.add_command(version)
main.add_command(completion)
main.add_command(dashboard)
