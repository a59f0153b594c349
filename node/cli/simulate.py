"""``learnchain simulate``: the consensus engine over a simulated network, in one process."""

from __future__ import annotations

import click

from learnchain.consensus.params import ChainParams
from learnchain.consensus.simulation import (
    DEFAULT_BYZANTINE,
    Behaviour,
    SimulationConfig,
    SimulationResult,
    run_simulation,
)
from learnchain.consensus.types import Threshold
from learnchain.node.cli.options import (
    echo_json,
    output_option,
    parse_behaviours,
    parse_crashes,
    parse_partitions,
    parse_stakes,
    parse_threshold,
    vote_relay_option,
)


@click.command()
@click.option("--validators", type=click.IntRange(1, 1000), default=4, show_default=True)
@click.option(
    "--stakes", callback=parse_stakes, help="Relative stakes, e.g. 1,1,2,3 (default equal)."
)
@click.option("--heights", type=click.IntRange(1), default=100, show_default=True)
@click.option("--threshold", default="2/3", callback=parse_threshold, show_default=True)
@click.option(
    "--byzantine", type=click.IntRange(0), default=0, help="The last K validators misbehave."
)
@click.option(
    "--behaviour",
    "behaviours",
    callback=parse_behaviours,
    help="Byzantine behaviours, comma separated: "
    + ", ".join(b.value for b in Behaviour)
    + " (default: equivocate, approve_all, poison, invalid).",
)
@click.option("--drop", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True)
@click.option("--partition", "partitions", multiple=True, help="START:END[:0,1/2,3] (seconds).")
@click.option("--crash", "crashes", multiple=True, help="NODE:AT:DOWN (seconds).")
@click.option(
    "--approval",
    type=click.FloatRange(0, 1),
    default=1.0,
    show_default=True,
    help="Chance an honest validator approves a good model update.",
)
@vote_relay_option
@click.option("--seed", type=int, default=0, show_default=True)
@output_option
def simulate(
    validators: int,
    stakes: tuple[int, ...],
    heights: int,
    threshold: Threshold,
    byzantine: int,
    behaviours: frozenset[Behaviour] | None,
    drop: float,
    partitions: tuple[str, ...],
    crashes: tuple[str, ...],
    approval: float,
    vote_relay_from: int,
    seed: int,
    output: str,
) -> None:
    """Run the real consensus engine over a simulated network (drops, partitions, byzantines)."""
    if stakes and len(stakes) != validators:
        raise click.BadParameter(
            f"lists {len(stakes)} stakes for {validators} validators", param_hint="--stakes"
        )
    if byzantine > validators:
        raise click.BadParameter(
            "more byzantine validators than validators", param_hint="--byzantine"
        )
    config = SimulationConfig(
        validators=validators,
        stakes=stakes,
        heights=heights,
        threshold=threshold,
        byzantine=byzantine,
        behaviours=behaviours or DEFAULT_BYZANTINE,
        drop=drop,
        partitions=parse_partitions(partitions, validators),
        crashes=parse_crashes(crashes, validators),
        approval=approval,
        params=ChainParams(vote_relay_from=vote_relay_from),
        seed=seed,
    )
    result = run_simulation(config)
    if output == "json":
        echo_json(result.as_dict())
    else:
        print_summary(config, result)


def print_summary(config: SimulationConfig, result: SimulationResult) -> None:
    """A readable account of a simulation."""
    data = result.as_dict()
    click.echo(
        f"simulated {config.validators} validators, threshold {config.threshold}, "
        f"{config.byzantine} byzantine, drop {config.drop}, seed {config.seed}"
    )
    click.echo(f"  heights committed   {result.heights} of {config.heights}")
    click.echo(f"  forks               {result.forks}")
    click.echo(f"  most rounds/height  {result.max_rounds}")
    click.echo(f"  poisoned committed  {result.poisoned_committed}")
    click.echo(f"  slashed validators  {result.slashed or 'none'}")
    total = sum(result.proposals_by_validator) or 1
    click.echo("  validator  stake share  proposal share")
    for i, (count, share) in enumerate(
        zip(result.proposals_by_validator, result.stake_share, strict=True)
    ):
        click.echo(f"  {i:>9}  {share:>11.3f}  {count / total:>14.3f}")
    click.echo(
        f"  {result.wall_seconds:.2f} s wall ({data['heights_per_second']} heights/s), "
        f"{result.sim_seconds:.1f} s simulated, "
        f"{data['signature_verifications_per_height']} signature verifications per height"
    )
