"""Organisations bring their own data and their own task: a chain made from CSV files of another
shape than digits (one per validator, features on raw scales, each party missing classes)
trains a model that beats every party alone; a task loaded by MODULE:CLASS, with its own model
and its own evaluation, runs the same way."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from learnchain.ml.data import Dataset, read_data_file
from learnchain.node.home.files import read_genesis
from learnchain.node.localnet.cluster import LocalCluster, check_learnchain

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PARTIES = 3
FEATURES = 12
CLASSES = 4
TRAINING_HEIGHTS = "12"


def make_data(root: Path) -> tuple[list[Path], Dataset]:
    """One CSV per party, each holding mostly two of the four classes, with features on scales
    from 1 to 1000; and a balanced test set."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=1500,
        n_features=FEATURES,
        n_informative=8,
        n_classes=CLASSES,
        n_clusters_per_class=1,
        class_sep=1.5,
        random_state=7,
    )
    x = x * np.array([10.0 ** (j % 4) for j in range(FEATURES)])
    rng = np.random.default_rng(7)
    order = rng.permutation(len(y))
    test, pool = order[:300], order[300:]
    files = []
    for party in range(PARTIES):
        mostly = {party % CLASSES, (party + 1) % CLASSES}
        keep = [i for i in pool if y[i] in mostly or rng.random() < 0.05]
        rows = rng.choice(keep, size=min(len(keep), 300), replace=False)
        path = root / f"party{party}.csv"
        header = ",".join(f"f{j}" for j in range(FEATURES)) + ",label\n"
        lines = [",".join(f"{v:.6g}" for v in x[i]) + f",{y[i]}\n" for i in rows]
        path.write_text(header + "".join(lines))
        files.append(path)
    return files, Dataset(x[test].astype(np.float32), y[test].astype(np.int64))


def wait_for_the_budget(cluster: LocalCluster) -> None:
    """Until every validator has committed the last height that may change the model."""
    cluster.wait_for(range(PARTIES), int(TRAINING_HEIGHTS), timeout=240)


def export_model(cluster: LocalCluster, out: Path) -> tuple[Any, Any]:
    """node0's model exported with the CLI, and the chain's task."""
    from safetensors.torch import load_file

    from learnchain.ml.tasks import get_task
    from learnchain.ml.training import load_model

    check_learnchain("model", "export", "--home", str(cluster[0].home), "--output-file", str(out))
    task = get_task(read_genesis(cluster[0].home).task)
    return load_model(task, load_file(str(out))), task


def accuracy(task: Any, model: Any, test: Dataset) -> float:
    """Plain argmax accuracy on ``test`` (whatever the task's own evaluation is)."""
    from learnchain.ml.training import evaluate_model

    return evaluate_model(task, model, test).accuracy


def alone_accuracies(task: Any, files: list[Path], test: Dataset) -> list[float]:
    """Each party trained alone on all of its file, for as many epochs as a long local run."""
    return [
        accuracy(task, task.train(task.initial_model(), read_data_file(path), 0, 40), test)
        for path in files
    ]


def test_a_chain_made_from_csv_files_beats_every_party_alone(tmp_path: Path) -> None:
    files, test = make_data(tmp_path)
    with LocalCluster(
        tmp_path / "net",
        PARTIES,
        *("--data-files", ",".join(str(f) for f in files)),
        *("--training-heights", TRAINING_HEIGHTS, "--plateau-rounds", "0"),
    ) as cluster:
        genesis = json.loads((cluster[0].home / "genesis.json").read_text())["task"]
        assert (genesis["name"], genesis["features"], genesis["classes"]) == (
            "tabular-mlp",
            FEATURES,
            CLASSES,
        )
        cluster.start_all()
        wait_for_the_budget(cluster)
        model, task = export_model(cluster, tmp_path / "model.safetensors")
    shared, alone = accuracy(task, model, test), alone_accuracies(task, files, test)
    assert shared > max(alone) + 0.05, (shared, alone)


PLUGIN = '''
    """A user's own task: a two-hidden-layer model, scored by top-2 accuracy."""

    import numpy as np
    import torch
    from torch import nn

    from learnchain.ml.tasks import Task
    from learnchain.ml.training import Evaluation


    class TopTwoTask(Task):
        name = "top-two"
        standardizes = True

        def build_model(self) -> nn.Module:
            width = int(self.config.params.get("width", 24))
            return nn.Sequential(
                nn.Linear(self.features, width),
                nn.Tanh(),
                nn.Linear(width, width),
                nn.Tanh(),
                nn.Linear(width, self.classes),
            )

        def prepare(self, x: torch.Tensor) -> torch.Tensor:
            mean = torch.tensor(self.config.feature_mean)
            scale = torch.tensor(self.config.feature_scale)
            return (x - mean) / scale

        @torch.no_grad()
        def evaluate(self, model: nn.Module, data) -> Evaluation:
            model.eval()
            x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
            logits = model(self.prepare(x))
            top_two = logits.topk(2, dim=1).indices
            correct = (top_two == y[:, None]).any(dim=1)
            losses = nn.functional.cross_entropy(logits, y, reduction="none")
            return Evaluation(correct.numpy(), losses.numpy().astype(np.float32))
'''


def test_a_task_loaded_by_module_and_class_trains_with_its_own_model_and_evaluation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "user_task.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))  # for this test's own import
    files, test = make_data(tmp_path)
    with LocalCluster(
        tmp_path / "net",
        PARTIES,
        *("--task", "user_task:TopTwoTask", "--task-param", "width=20"),
        *("--task-path", str(tmp_path / "plugins")),  # every node finds it there, no PYTHONPATH
        *("--task-param", "metric=accuracy"),  # the recorded score is its top-2 accuracy
        *("--data-files", ",".join(str(f) for f in files)),
        *("--training-heights", TRAINING_HEIGHTS, "--plateau-rounds", "0"),
    ) as cluster:
        task_config = read_genesis(cluster[0].home).task
        assert task_config.name == "user_task:TopTwoTask"
        assert task_config.params == {"width": 20}
        cluster.start_all()
        wait_for_the_budget(cluster)
        model, task = export_model(cluster, tmp_path / "model.safetensors")
        status = cluster[0].status()
        assert status is not None
        recorded = status.learning.best_score / 1e6
    assert type(task).__name__ == "TopTwoTask"
    assert next(tuple(p.shape) for p in model.parameters()) == (20, FEATURES)  # width=20
    own_score = task.score(task.evaluate(model, test))  # top-2 accuracy
    assert own_score >= accuracy(task, model, test)
    assert abs(recorded - own_score) < 0.1  # the validators recorded the task's own score
    shared, alone = accuracy(task, model, test), alone_accuracies(task, files, test)
    assert shared > max(alone) + 0.05, (shared, alone)
