"""``learnchain demo``: until the validator daemon lands, a simulated testnet with a summary."""

from __future__ import annotations

import click

from consensus.simulation import SimulationConfig, run_simulation
from consensus.types import Threshold
from node.cli.options import echo_json, parse_threshold
from node.cli.simulate import print_summary


@click.command()
@click.option("--validators", type=click.IntRange(1, 100), default=5, show_default=True)
@click.option("--rounds", type=click.IntRange(1), default=200, show_default=True)
@click.option("--byzantine", type=click.IntRange(0), default=1, show_default=True)
@click.option("--threshold", default="2/3", callback=parse_threshold, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def demo(
    validators: int, rounds: int, byzantine: int, threshold: Threshold, seed: int, output: str
) -> None:
    """A local testnet: the consensus engine with a byzantine validator (simulated network)."""
    config = SimulationConfig(
        validators=validators,
        heights=rounds,
        byzantine=min(byzantine, validators),
        threshold=threshold,
        drop=0.05,
        seed=seed,
    )
    result = run_simulation(config)
    if output == "json":
        echo_json(result.as_dict())
    else:
        print_summary(config, result)
