"""A node trains on the device it names, or says in one line why it cannot; the model rests on
the CPU, where everything validators agree on is computed."""

from __future__ import annotations

import pytest
import torch

from learnchain.ml.config import TaskConfig
from learnchain.ml.data import load_digits_party
from learnchain.ml.device import LocalSettings, resolve_device
from learnchain.ml.errors import TaskError
from learnchain.ml.learner import Learner
from learnchain.ml.tasks import get_task

HAS_CUDA = torch.cuda.is_available()


def test_cpu_and_auto_resolve_to_a_device_of_this_machine() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if HAS_CUDA else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert resolve_device("auto").type == expected


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("gpu", "unknown device 'gpu'"),
        ("cuda:x", "unknown device 'cuda:x'"),
        ("cuda:64", "cuda:64 is not on this machine"),
    ],
)
def test_an_unknown_or_absent_device_is_one_clear_error(name: str, message: str) -> None:
    with pytest.raises(TaskError, match=message):
        resolve_device(name)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_mps_where_there_is_none_is_refused() -> None:
    with pytest.raises(TaskError, match="mps is not available"):
        resolve_device("mps")


def train_once(local: LocalSettings) -> Learner:
    task = get_task(TaskConfig(), local)
    learner = Learner(task, load_digits_party(0, 4, "iid", 0)[0])
    learner.accept(learner.propose(seed=3))
    return learner


def test_mixed_precision_training_learns_as_well_and_leaves_float32_weights() -> None:
    plain = train_once(LocalSettings())
    full = plain.evaluate_current().accuracy
    learner = train_once(LocalSettings(precision="bfloat16"))
    weights = learner.current()
    assert all(t.dtype == torch.float32 for t in weights.values())
    assert not torch.equal(weights["0.weight"], plain.current()["0.weight"])  # it did autocast
    assert full > 0.5
    assert learner.evaluate_current().accuracy > full - 0.1


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device on this machine")
def test_training_on_cuda_returns_cpu_weights_close_to_the_cpu_ones() -> None:
    on_cpu = train_once(LocalSettings()).current()
    on_cuda = train_once(LocalSettings(device=torch.device("cuda"))).current()
    assert all(t.device.type == "cpu" for t in on_cuda.values())
    for name in on_cpu:
        assert torch.allclose(on_cpu[name], on_cuda[name], atol=1e-3), name
