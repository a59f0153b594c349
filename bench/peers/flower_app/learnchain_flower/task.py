"""The model, the data and the training: the same as learnchain's validators use in
``bench/large_model.py`` (its task plugin, the digits shards, ``Task.train``)."""

from __future__ import annotations

from typing import Any

from large_model_task import DeepMLP

from learnchain.ml.tasks import TaskConfig


def make_task(run_config: dict[str, Any]) -> DeepMLP:
    """The bench's ``DeepMLP`` at the run's width and depth."""
    params = {"width": int(run_config["width"]), "depth": int(run_config["depth"])}
    return DeepMLP(
        TaskConfig(
            name="large_model_task:DeepMLP",
            params=params,
            seed=int(run_config["seed"]),
            local_epochs=int(run_config["local-epochs"]),
        )
    )
