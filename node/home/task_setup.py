"""The genesis task of a new chain from the command line: the task by name, its parameters, and
the shape of the data the validators will train on, read from their files.

``learnchain testnet --data-files`` and ``learnchain init --data-file`` read each file with the
task's own reader, take the number of features and classes from them (all files must agree on
the features), and put those in the genesis, so that nobody edits genesis.json by hand. Every
start checks the node's file against the genesis again (``Task.load_data``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from learnchain.ml.config import FILE_DATA_METRIC, Metric, TaskConfig, parse_task_params
from learnchain.ml.data_summary import DataSummary
from learnchain.node.home.files import DataSource

if TYPE_CHECKING:
    from learnchain.ml.tasks import Task


def compute_task_config(
    name: str | None,
    params: list[str],
    data_files: list[Path],
    label_column: str,
    seed: int,
    pretrained: str = "",
) -> TaskConfig:
    """The task config for a new chain; TaskError or DataError (one line) when a name, a
    parameter, a file or the pretrained weights are bad. Without a name, ``tabular-mlp`` voting
    by loss for data files, else ``digits-mlp``."""
    from learnchain.ml.tasks import fit_task_to_summaries, get_task

    config = compute_named_task(name, params, seed, bool(data_files))
    if not data_files:
        check_model_size(config, pretrained)  # the task must be found and built, as every node will
        return config
    task = get_task(config)
    # the summaries a genesis ceremony's gentxs carry, so that both make the same genesis
    named = [(str(path), compute_file_summary(task, path, label_column)) for path in data_files]
    shaped = fit_task_to_summaries(config, named)
    check_model_size(shaped, pretrained)  # a task that cannot take this shape says so now
    return shaped


def compute_named_task(
    name: str | None, params: list[str], seed: int, has_data: bool
) -> TaskConfig:
    """The task by name (``tabular-mlp`` voting by loss for a chain made from data, else
    ``digits-mlp``) with its ``--task-param`` settings."""
    default = "tabular-mlp" if has_data else "digits-mlp"
    metric = FILE_DATA_METRIC if has_data else Metric.ACCURACY  # --task-param metric=...
    return parse_task_params(params, TaskConfig(name=name or default, seed=seed, metric=metric))


def compute_summarised_task_config(
    name: str | None,
    params: list[str],
    named: list[tuple[str, DataSummary]],
    seed: int,
    pretrained: str = "",
) -> TaskConfig:
    """The task config for a chain whose founders sent data summaries instead of files (a
    genesis ceremony): the same shape and standardisation as from the files themselves."""
    from learnchain.ml.tasks import fit_task_to_summaries

    config = compute_named_task(name, params, seed, bool(named))
    if named:
        config = fit_task_to_summaries(config, named)
    check_model_size(config, pretrained)
    return config


def summarise_data_file(task_name: str, path: Path, label_column: str) -> DataSummary:
    """A party's data file or folder of images read by the named task's own reader, as a
    summary (``compute_file_summary``)."""
    from learnchain.ml.tasks import get_task

    task = get_task(compute_named_task(task_name, [], 0, True))
    return compute_file_summary(task, path, label_column)


def compute_file_summary(task: Task, path: Path, label_column: str) -> DataSummary:
    """A data file or folder of images read by ``task``'s reader, as a summary (no row leaves;
    a folder's also names its class subfolders and the images' shape)."""
    from learnchain.ml.data import compute_image_shape, list_image_classes
    from learnchain.ml.data_summary import compute_data_summary

    summary = compute_data_summary(task.read_data(path, label_column))
    if not path.is_dir():
        return summary
    return dataclasses.replace(
        summary,
        class_names=tuple(list_image_classes(path)),
        image_shape=tuple(compute_image_shape(path, summary.features)),
    )


def check_model_size(config: TaskConfig, pretrained: str = "") -> None:
    """TaskError unless the task builds its initial model (from the pretrained weights, if
    given), something in it trains, and its weights fit the chain's ``max_weights_bytes``
    (every node would refuse them otherwise)."""
    from learnchain.ml.device import LocalSettings
    from learnchain.ml.errors import TaskError
    from learnchain.ml.tasks import get_task
    from learnchain.ml.weights_file import WeightsLayout

    size = WeightsLayout.of_state(
        get_task(config, LocalSettings(pretrained=pretrained)).initial_weights()
    ).file_size
    if size > config.max_weights_bytes:
        raise TaskError(
            f"the task's initial model is {size} bytes, more than task.max_weights_bytes "
            f"({config.max_weights_bytes}); raise it with --task-param max_weights_bytes=N"
        )


def compute_file_source(path: Path, label_column: str) -> DataSource:
    """config.toml's data source for an operator's file (by absolute path)."""
    return DataSource(kind="file", path=str(path.resolve()), label_column=label_column)
