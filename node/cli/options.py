"""Parsing of command-line values shared by several commands; bad values are one-line errors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from learnchain.consensus.params import (
    DEFAULT_VOTE_RELAY_FROM,
    MAX_LEARNING_MS,
    SCORE_UNIT,
    ChainParams,
)
from learnchain.consensus.simulation import Behaviour, Crash, Partition
from learnchain.consensus.types import Threshold
from learnchain.ml.config import TaskConfig

DEFAULT_HOME = "~/.learnchain"
HOME_ENV = "LEARNCHAIN_HOME"
OUTPUT_FORMATS = ("text", "json")


def home_option(fn: Any) -> Any:
    """--home DIR, from $LEARNCHAIN_HOME or ~/.learnchain when not given."""
    return click.option(
        "--home",
        type=click.Path(path_type=Path),
        envvar=HOME_ENV,
        default=DEFAULT_HOME,
        callback=lambda _ctx, _param, value: Path(value).expanduser(),
        show_default=f"${HOME_ENV} or {DEFAULT_HOME}",
        help="The node's home directory.",
    )(fn)


def output_option(fn: Any) -> Any:
    """--output text|json: the format of what the command prints."""
    return click.option(
        "--output",
        type=click.Choice(OUTPUT_FORMATS),
        default="text",
        show_default=True,
        help="The format of what the command prints.",
    )(fn)


vote_relay_option = click.option(
    "--vote-relay-from",
    type=click.IntRange(0),
    default=DEFAULT_VOTE_RELAY_FROM,
    show_default=True,
    help="From this many validators on, votes for a block go through the round's proposer, "
    "which relays them in batches (0: every vote to every validator).",
)


def parse_hex(value: str, name: str, length: int, kind: str = "hex") -> bytes:
    """A command-line argument of ``length`` bytes in hex; a bad one is a one-line error."""
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise click.BadParameter(f"{name} must be {kind}") from None
    if len(raw) != length:
        raise click.BadParameter(f"{name} must be {length} bytes ({2 * length} hex characters)")
    return raw


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


def _remember_learning(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    ctx.meta.setdefault("learning", {})[param.name] = value


def _learning_option(name: str, kind: Any, default: object, help_text: str) -> Any:
    return click.option(
        name,
        type=kind,
        default=default,
        show_default=True,
        help=help_text,
        expose_value=False,
        callback=_remember_learning,
    )


def learning_options(command: Any) -> Any:
    """The genesis's learning rules (docs/protocol.md §3.2, §3.4), for a new chain."""
    defaults = ChainParams()
    for option in reversed(
        (
            _learning_option(
                "--training-heights",
                click.IntRange(0),
                0,
                "Training budget: the model may change up to this height (0: no budget).",
            ),
            _learning_option(
                "--target-score",
                click.FloatRange(-1000, 1000),
                None,
                "End training once the validators' recorded score reaches this (accuracy, or "
                "-loss for loss tasks).",
            ),
            _learning_option(
                "--plateau-rounds",
                click.IntRange(0, 1_000_000),
                defaults.plateau_rounds,
                "End training after this many model updates without improving the best "
                "recorded score by --min-improvement (0: never).",
            ),
            _learning_option(
                "--min-improvement",
                click.FloatRange(0, 1),
                defaults.min_improvement / SCORE_UNIT,
                "What counts as an improvement for --plateau-rounds.",
            ),
            _learning_option(
                "--round-deadline",
                click.FloatRange(0.001, MAX_LEARNING_MS / 1000),
                defaults.round_deadline / 1000,
                "Seconds after a model is committed by which the proposer aggregates the "
                "contributions it has, if no quorum of them came sooner.",
            ),
            _learning_option(
                "--reputation-decay",
                click.FloatRange(0, 1, max_open=True),
                defaults.reputation_decay / SCORE_UNIT,
                "Keep contributors' reputations on chain (docs/protocol.md §3.9): each learning "
                "round a reputation keeps this share and moves by the others' appraisals, and "
                "aggregates leave out the lowest (0: no reputation; for example 0.95).",
            ),
            _learning_option(
                "--verdict-timeout",
                click.FloatRange(0.001, MAX_LEARNING_MS / 1000),
                defaults.verdict_timeout / 1000,
                "Seconds a validator may take to fetch and score a proposed model.",
            ),
        )
    ):
        command = option(command)
    return command


def compute_learning_params(params: ChainParams) -> ChainParams:
    """``params`` with the learning rules given to the running command (``learning_options``),
    checked: a bad combination is a one-line error."""
    given = click.get_current_context().meta.get("learning", {})
    training_heights: int = given["training_heights"]
    target_score: float | None = given["target_score"]
    plateau_rounds: int = given["plateau_rounds"]
    min_improvement: float = given["min_improvement"]
    round_deadline: float = given["round_deadline"]
    verdict_timeout: float = given["verdict_timeout"]
    reputation_decay: float = given["reputation_decay"]
    result = replace(
        params,
        training_heights=training_heights,
        target_score=None if target_score is None else round(target_score * SCORE_UNIT),
        plateau_rounds=plateau_rounds,
        min_improvement=round(min_improvement * SCORE_UNIT),
        round_deadline=round(round_deadline * 1000),
        verdict_timeout=round(verdict_timeout * 1000),
        reputation_decay=round(reputation_decay * SCORE_UNIT),
    )
    try:
        result.validate()
    except ValueError as error:
        raise click.BadParameter(str(error)) from error
    return result


def task_options(command: Any) -> Any:
    """--task, --task-param and --label-column: the genesis task of a new chain."""
    for option in reversed(
        [
            click.option(
                "--task",
                default=None,
                help="A built-in task (digits-mlp, digits-cnn, tabular-mlp), an installed "
                "learnchain.tasks entry point, or MODULE:CLASS "
                "[default: tabular-mlp with data files, else digits-mlp].",
            ),
            click.option(
                "--task-param",
                "task_params",
                multiple=True,
                metavar="KEY=VALUE",
                help="A task setting (hidden=64, local_epochs=5, metric=loss, ...); other keys "
                "go to the task's own params. Repeatable.",
            ),
            click.option(
                "--label-column",
                default="label",
                show_default=True,
                help="The CSV column that holds the label.",
            ),
            click.option(
                "--task-path",
                "task_path",
                multiple=True,
                type=click.Path(path_type=Path, exists=True, file_okay=False),
                metavar="DIR",
                help="A folder holding the module of a MODULE:CLASS task (or aggregation rule); "
                "written to config.toml's task_path, so that start finds it too. Repeatable.",
            ),
            click.option(
                "--pretrained",
                type=click.Path(path_type=Path, exists=True, dir_okay=False),
                default=None,
                metavar="FILE",
                help="A safetensors file of pretrained weights the task loads its frozen base "
                "from (Task.load_pretrained); the genesis pins the base by its hash, and "
                "config.toml's pretrained names the file (each node needs the same one).",
            ),
        ]
    ):
        command = option(command)
    return command


def compute_task_option(
    task: str | None,
    params: tuple[str, ...],
    data_files: list[Path],
    label_column: str,
    seed: int,
    task_path: tuple[Path, ...] = (),
    pretrained: str = "",
) -> TaskConfig:
    """The genesis task from the task options and the data files; a one-line error on bad ones
    (nothing is written before)."""
    from learnchain.ml.errors import MLError, PluginImportError
    from learnchain.ml.plugins import add_plugin_folders
    from learnchain.node.home.task_setup import compute_task_config

    add_plugin_folders(task_path)
    try:
        return compute_task_config(task, list(params), data_files, label_column, seed, pretrained)
    except PluginImportError as error:
        raise click.ClickException(
            f"{error}; give its folder with --task-path DIR (or put it on PYTHONPATH)"
        ) from None
    except MLError as error:
        raise click.ClickException(str(error)) from None


def compute_task_path(task_path: tuple[Path, ...]) -> tuple[str, ...]:
    """--task-path folders as config.toml's ``task_path`` (absolute)."""
    return tuple(str(folder.resolve()) for folder in task_path)


def compute_pretrained(pretrained: Path | None) -> str:
    """--pretrained as config.toml's ``pretrained`` (absolute; empty without one)."""
    return str(pretrained.resolve()) if pretrained is not None else ""
