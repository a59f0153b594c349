"""The learner in a process of its own trains the weights, and gives the votes, scores and
values, that the node would have computed itself; a learner process that is killed, or runs out
of memory, fails that request with one clear error and the next runs in a fresh process."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from learnchain.ml.codec import compute_weights_hash
from learnchain.ml.data import Dataset
from learnchain.ml.tasks import Task
from learnchain.ml.training import Evaluation
from learnchain.ml.weights_file import WeightsFile, iter_source, write_weights
from learnchain.node.cli import main
from learnchain.node.store.weights_store import WeightsStore
from learnchain.node.training.learning_worker import LearningWorker
from learnchain.node.training.training_job import TrainingJob
from learnchain.node.training.training_process import TrainingFailed, TrainingProcess
from learnchain.node.training.training_worker import load_worker_learner


class GreedyTask(Task):
    """Digits MLP whose first training (while ``greedy`` is a file that exists) asks for far
    more memory than the training process may have, and whose first evaluation (while the
    optional ``fragile`` is a file that exists) kills the process it runs in."""

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(self.features, 32), nn.ReLU(), nn.Linear(32, self.classes))

    def train(
        self, model: nn.Module, data: Dataset, seed: int, epochs: int | None = None
    ) -> nn.Module:
        marker = Path(str(self.config.params["greedy"]))
        if marker.exists():
            marker.unlink()
            torch.ones(1 << 31)  # 8 GiB
        return super().train(model, data, seed, epochs)

    def evaluate(self, model: nn.Module, data: Dataset) -> Evaluation:
        marker = Path(str(self.config.params.get("fragile", "")))
        if marker.name and marker.exists():
            marker.unlink()
            os.kill(os.getpid(), signal.SIGKILL)
        return super().evaluate(model, data)


def make_trainer_home(tmp_path: Path, *task: str) -> Path:
    """A one-validator chain's home (``learnchain init`` with the task options)."""
    home = tmp_path / "home"
    done = CliRunner().invoke(main, ["init", "--home", str(home), "--moniker", "n", *task])
    assert done.exit_code == 0, done.output
    return home


def write_global(home: Path, tmp_path: Path) -> Path:
    """The genesis model as a weights file, as the node stores it."""
    learner = load_worker_learner(home)
    path = tmp_path / "global.safetensors"
    write_weights(path, learner.layout, iter_source(learner.global_source, learner.layout))
    return path


def test_the_training_process_trains_what_the_node_would_have(tmp_path: Path) -> None:
    home = make_trainer_home(tmp_path)
    start = write_global(home, tmp_path)
    trainer = TrainingProcess(home)
    try:
        weights_hash = trainer.train(start, 7, tmp_path / "out.safetensors")
    finally:
        trainer.close()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as both processes of a node train (config.toml threads)
    try:
        here = load_worker_learner(home)
        trained_here = compute_weights_hash(here.propose(seed=7))
    finally:
        torch.set_num_threads(threads)  # the tests after this one run as they would alone
    assert weights_hash == trained_here
    assert WeightsFile(tmp_path / "out.safetensors", here.layout, 1 << 30).compute_hash() == (
        weights_hash
    )


def test_a_learner_process_votes_scores_and_appraises_as_the_node_itself_would(
    tmp_path: Path,
) -> None:
    home = make_trainer_home(tmp_path)
    threads = torch.get_num_threads()  # a learning worker sets the node's (config.toml threads)
    here = LearningWorker(load_worker_learner(home), WeightsStore(tmp_path / "here"))
    process = TrainingProcess(home)
    there = LearningWorker(load_worker_learner(home), WeightsStore(tmp_path / "there"), process)

    async def judge(worker: LearningWorker, paths: list[Path]) -> tuple[object, ...]:
        inputs = [(f"party{i}", path, 100) for i, path in enumerate(paths)]
        for path in paths:
            await worker.prepare(path)
        votes = [await worker.vote(path) for path in paths]
        return votes, await worker.appraise(inputs[:2], inputs[2:])

    async def scenario() -> None:
        paths = [(await here.propose()).path for _ in range(3)]
        assert await judge(there, paths) == await judge(here, paths)
        first = await there.propose()  # trained there, then the same model is global on both
        await here.accept(first.path, first.weights_hash)
        await there.accept(first.path, first.weights_hash)
        assert await judge(there, paths) == await judge(here, paths)

    try:
        asyncio.run(scenario())
        assert process.pid is not None  # the votes and values were the process's
        assert not list(there.learner.model.parameters())  # the node holds no model instance
    finally:
        here.close()
        there.close()
        torch.set_num_threads(threads)


def test_a_killed_training_process_fails_that_training_and_a_new_one_trains_next(
    tmp_path: Path,
) -> None:
    home = make_trainer_home(tmp_path, "--task-param", "local_epochs=400")
    start = write_global(home, tmp_path)
    failures: list[str] = []
    trainer = TrainingProcess(home, on_failure=failures.append)
    outcome: list[object] = []

    def train() -> None:
        try:
            outcome.append(trainer.train(start, 1, tmp_path / "a.safetensors"))
        except TrainingFailed as error:
            outcome.append(error)

    try:
        training = threading.Thread(target=train)
        training.start()
        deadline = time.monotonic() + 60
        while trainer.pid is None and time.monotonic() < deadline:
            time.sleep(0.05)
        first = trainer.pid
        assert first is not None
        time.sleep(3)  # into the training
        os.kill(first, signal.SIGKILL)
        training.join(60)
        assert len(outcome) == 1 and isinstance(outcome[0], TrainingFailed), outcome
        assert "killed by signal 9" in str(outcome[0])
        assert failures == ["crash"]
        assert len(trainer.train(start, 2, tmp_path / "b.safetensors")) == 32  # after the kill
        assert trainer.pid != first and trainer.restarts == 1
    finally:
        trainer.close()


def test_a_training_that_runs_out_of_memory_fails_alone_and_the_next_trains(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "greedy"
    marker.touch()
    task = ("--task", "tests.node.test_training_process:GreedyTask")
    home = make_trainer_home(tmp_path, *task, "--task-param", f"greedy={marker}")
    start = write_global(home, tmp_path)
    failures: list[str] = []
    trainer = TrainingProcess(home, memory_mb=3000, on_failure=failures.append)
    try:
        with pytest.raises(TrainingFailed, match="memory"):
            trainer.train(start, 1, tmp_path / "a.safetensors")
        assert failures == ["error"]
        assert not (tmp_path / "a.safetensors").exists()
        assert len(trainer.train(start, 2, tmp_path / "b.safetensors")) == 32
    finally:
        trainer.close()


def test_a_torchrun_job_of_two_processes_trains_a_contribution(tmp_path: Path) -> None:
    home = make_trainer_home(tmp_path)
    start = write_global(home, tmp_path)
    failures: list[str] = []
    trainer = TrainingJob(home, 2, on_failure=failures.append)
    out = tmp_path / "out.safetensors"
    weights_hash = trainer.train(start, 3, out)
    learner = load_worker_learner(home)
    assert WeightsFile(out, learner.layout, 1 << 30).compute_hash() == weights_hash
    assert weights_hash != WeightsFile(start, learner.layout, 1 << 30).compute_hash()
    assert failures == [] and not Path(f"{out}.reply").exists()


def test_a_torchrun_job_that_fails_costs_that_training(tmp_path: Path) -> None:
    home = make_trainer_home(tmp_path)
    failures: list[str] = []
    trainer = TrainingJob(home, 2, on_failure=failures.append)
    out = tmp_path / "out.safetensors"
    with pytest.raises(TrainingFailed, match="cannot read weights"):
        trainer.train(tmp_path / "missing.safetensors", 3, out)
    assert failures == ["error"] and not out.exists()
