"""Parsing of command-line values shared by several commands; bad values are one-line errors."""

from __future__ import annotations

import json
from typing import Any

import click

from consensus.params import DEFAULT_VOTE_RELAY_FROM
from consensus.simulation import Behaviour, Crash, Partition
from consensus.types import Threshold

vote_relay_option = click.option(
    "--vote-relay-from",
    type=click.IntRange(0),
    default=DEFAULT_VOTE_RELAY_FROM,
    show_default=True,
    help="From this many validators on, votes for a block go through the round's proposer, "
    "which relays them in batches (0: every vote to every validator).",
)


def parse_threshold(_ctx: click.Context, _param: click.Parameter, value: str) -> Threshold:
    """--threshold 2/3|1/2."""
    try:
        return Threshold.parse(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error


def parse_stakes(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[int, ...]:
    """--stakes 1,1,2,3."""
    if not value:
        return ()
    try:
        stakes = tuple(int(part) for part in value.split(","))
    except ValueError as error:
        raise click.BadParameter(
            f"expected whole numbers separated by commas, got {value!r}"
        ) from error
    if any(s <= 0 for s in stakes):
        raise click.BadParameter("every stake must be positive")
    return stakes


def _parse_groups(text: str, validators: int) -> tuple[frozenset[int], ...]:
    groups = tuple(frozenset(int(i) for i in part.split(",") if i) for part in text.split("/"))
    if any(i < 0 or i >= validators for g in groups for i in g):
        raise click.BadParameter(f"partition groups name validators outside 0..{validators - 1}")
    return groups


def parse_partitions(values: tuple[str, ...], validators: int) -> tuple[Partition, ...]:
    """--partition START:END[:0,1,2/3,4,5] in simulated seconds (default groups: two halves)."""
    partitions = []
    for value in values:
        parts = value.split(":")
        try:
            start, end = float(parts[0]), float(parts[1])
            if len(parts) > 2:
                groups = _parse_groups(parts[2], validators)
            else:
                half = (validators + 1) // 2
                groups = (frozenset(range(half)), frozenset(range(half, validators)))
        except (ValueError, IndexError) as error:
            raise click.BadParameter(
                f"--partition takes START:END[:GROUPS] in seconds, e.g. 2:10:0,1/2,3; got {value!r}"
            ) from error
        if end <= start:
            raise click.BadParameter(f"--partition {value!r} ends before it starts")
        partitions.append(Partition(int(start * 1000), int(end * 1000), groups))
    return tuple(partitions)


def parse_crashes(values: tuple[str, ...], validators: int) -> tuple[Crash, ...]:
    """--crash NODE:AT:DOWN in simulated seconds."""
    crashes = []
    for value in values:
        try:
            node, at, down = value.split(":")
            crash = Crash(int(node), int(float(at) * 1000), int(float(down) * 1000))
        except ValueError as error:
            raise click.BadParameter(
                f"--crash takes NODE:AT:DOWN (seconds), e.g. 2:5:3; got {value!r}"
            ) from error
        if not 0 <= crash.node < validators:
            raise click.BadParameter(f"--crash names validator {crash.node} of {validators}")
        crashes.append(crash)
    return tuple(crashes)


def parse_behaviours(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> frozenset[Behaviour] | None:
    """--behaviour equivocate,approve_all,..."""
    if not value:
        return None
    names = {b.value: b for b in Behaviour}
    chosen = set()
    for part in value.split(","):
        if part not in names:
            raise click.BadParameter(f"unknown behaviour {part!r}; choose from {', '.join(names)}")
        chosen.add(names[part])
    return frozenset(chosen)


def echo_json(payload: dict[str, Any]) -> None:
    """One JSON object on one line of stdout."""
    click.echo(json.dumps(payload, sort_keys=False))
