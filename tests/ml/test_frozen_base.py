"""A task that freezes a base shares only what trains: the learner's weights, their hash and
training touch the trainable tensors alone, the base is pinned by its hash, and a pretrained
file loads tensor by tensor or is one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from learnchain.ml.config import TaskConfig
from learnchain.ml.data import load_digits_party
from learnchain.ml.device import LocalSettings
from learnchain.ml.errors import PretrainedError, TaskError
from learnchain.ml.learner import Learner
from learnchain.ml.tasks import Task, get_task

NAME = "tests.ml.test_frozen_base:"


class Backbone(nn.Sequential):
    """A small pretrained network's shape."""

    def __init__(self, features: int, classes: int) -> None:
        super().__init__(nn.Linear(features, 32), nn.ReLU(), nn.Linear(32, classes))


class AdaptedTask(Task):
    """A frozen backbone (loaded from the node's pretrained file) and a trainable adapter."""

    def build_model(self) -> nn.Module:
        backbone = self.load_pretrained(Backbone(self.features, self.classes))
        for parameter in backbone.parameters():
            parameter.requires_grad = False
        adapter = nn.Linear(self.classes, self.classes)
        return nn.Sequential(backbone, adapter)


class AllFrozenTask(Task):
    """A model in which nothing trains."""

    def build_model(self) -> nn.Module:
        model = nn.Linear(self.features, self.classes)
        model.requires_grad_(False)
        return model


def adapted(pretrained: str = "", seed: int = 0) -> Task:
    return get_task(
        TaskConfig(name=NAME + "AdaptedTask", seed=seed, local_epochs=1),
        LocalSettings(pretrained=pretrained),
    )


def write_backbone(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    save_file(Backbone(64, 10).state_dict(), str(path))
    return path


def test_only_the_trainable_tensors_are_shared() -> None:
    task = adapted()
    model = task.initial_model()
    assert task.trainable(model) == ["1.bias", "1.weight"]
    assert sorted(task.initial_weights()) == ["1.bias", "1.weight"]


def test_a_model_that_freezes_nothing_shares_its_whole_state_with_buffers() -> None:
    task = get_task(
        TaskConfig(name="tabular-mlp", features=3, feature_mean=[0.0] * 3, feature_scale=[1.0] * 3)
    )
    model = task.initial_model()
    assert task.trainable(model) == sorted(model.state_dict())
    assert "0.mean" in task.trainable(model)
    assert task.compute_base_hash(model) == b""


def test_a_model_in_which_nothing_trains_is_refused() -> None:
    with pytest.raises(TaskError, match="no tensor of the model trains"):
        get_task(TaskConfig(name=NAME + "AllFrozenTask")).initial_weights()


def test_the_base_hash_names_the_pretrained_weights(tmp_path: Path) -> None:
    first = write_backbone(tmp_path / "a.safetensors", seed=1)
    second = write_backbone(tmp_path / "b.safetensors", seed=2)
    task_a, task_b = adapted(str(first)), adapted(str(second))
    hash_a = task_a.compute_base_hash(task_a.initial_model())
    assert len(hash_a) == 32
    assert hash_a == adapted(str(first)).compute_base_hash(adapted(str(first)).initial_model())
    assert hash_a != task_b.compute_base_hash(task_b.initial_model())
    # the adapters come from the seed alone: the same over either base
    a, b = task_a.initial_weights(), task_b.initial_weights()
    assert all(torch.equal(a[name], b[name]) for name in a)


def backbone_of(learner: Learner) -> nn.Module:
    model = learner.model
    assert isinstance(model, nn.Sequential)
    return model[0]


def test_training_moves_the_adapter_and_never_the_base(tmp_path: Path) -> None:
    task = adapted(str(write_backbone(tmp_path / "base.safetensors", seed=1)))
    data, _ = load_digits_party(0, 4, "iid", 0)
    learner = Learner(task, data)
    base_before = {k: v.clone() for k, v in backbone_of(learner).state_dict().items()}
    assert learner.layout.names == ["1.bias", "1.weight"]
    proposed = learner.propose()
    assert sorted(proposed) == ["1.bias", "1.weight"]
    assert not torch.equal(proposed["1.weight"], learner.current()["1.weight"])
    for name, tensor in backbone_of(learner).state_dict().items():
        assert torch.equal(tensor, base_before[name]), name
    assert learner.base_hash == task.compute_base_hash(task.initial_model())


def test_a_first_order_appraisal_differentiates_the_adapter_alone(tmp_path: Path) -> None:
    """The loss's gradient (``task.appraisal = first_order``, §3.5) is taken with respect to
    the trainable tensors only, through the frozen base, which it leaves without gradients."""
    task = adapted(str(write_backbone(tmp_path / "base.safetensors", seed=1)))
    data, _ = load_digits_party(0, 4, "iid", 0)
    learner = Learner(task, data)
    gradient = learner.loss_gradient(learner.current())
    assert sorted(gradient) == ["1.bias", "1.weight"]
    assert all(t.any() for t in gradient.values())
    assert all(p.grad is None for p in backbone_of(learner).parameters())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such pretrained weights file"),
        (b"not safetensors", "not a safetensors weights file"),
        ({"0.weight": torch.zeros(32, 64)}, "do not fit the task's model"),
        (
            {
                "0.weight": torch.zeros(32, 65),
                "0.bias": torch.zeros(32),
                "2.weight": torch.zeros(10, 32),
                "2.bias": torch.zeros(10),
            },
            r"0.weight is torch.float32 \(32, 65\)",
        ),
    ],
)
def test_a_pretrained_file_that_does_not_fit_is_one_clear_error(
    tmp_path: Path, content: object, message: str
) -> None:
    path = tmp_path / "base.safetensors"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, dict):
        save_file(content, str(path))
    with pytest.raises(PretrainedError, match=message):
        adapted(str(path)).initial_model()
