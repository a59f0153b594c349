"""The learner in a process of its own (config.toml ``trainer = "process"``), supervised by the
node.

An organisation's training and evaluation code is the part most likely to crash or run out of
memory; in the validator's own process it would take the validator with it. Here the learning worker
hands each training, each evaluation of weights on the private data and each appraisal of
contributions to a child process (``python -m learnchain.node.training.training_worker HOME``) that
builds the same learner from the home's genesis and config: it loads the weights from the files it
is named and writes trained weights to the file it is told. What stays in the validator is
arithmetic every validator must agree on to the bit (hashing, aggregating, re-computing an
aggregate) and the vote rule's decision on the child's per-sample results. A crash, a signal or an
out-of-memory there costs that round's contribution (or verdict): the node logs it once, counts it
(``learnchain_learning_training_failures_total``) and starts a fresh process for the next request,
while it goes on voting. ``trainer_memory_mb`` caps the child's memory, so a training that would
exhaust the machine fails alone.

The protocol is one JSON line each way per request, over the child's stdin and stdout.

``trainer = "torchrun"`` runs each training as a job instead (``node/training/training_job.py``),
and evaluates in a learner process.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from learnchain.consensus.types import Hash
from learnchain.ml.errors import MLError
from learnchain.ml.training import Evaluation

log = logging.getLogger("learnchain.node")


class TrainingFailed(MLError):
    """The learner process failed a training or an evaluation (it crashed, was killed, or
    said why)."""


def describe_exit(returncode: int | None) -> str:
    """How a child process ended, in words ("killed by signal 9", "exit status 1")."""
    if returncode is None:
        return "it stopped answering"
    if returncode < 0:
        return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


class TrainingProcess:
    """The child process that trains and evaluates, started on first use and again after a
    failure."""

    def __init__(
        self,
        home: Path,
        memory_mb: int = 0,
        on_failure: Callable[[str], None] = lambda _reason: None,
    ) -> None:
        self.home = home
        self.memory_mb = memory_mb
        self.on_failure = on_failure  # counts failures by reason (crash, error)
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()  # one training at a time (the learner's thread)
        self._started = False
        self.restarts = 0  # processes started after the first

    @property
    def pid(self) -> int | None:
        """The running child's process id."""
        return self._process.pid if self._process is not None else None

    def _start(self) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "learnchain.node.training.training_worker", str(self.home)]
        if self.memory_mb:
            command += ["--memory-mb", str(self.memory_mb)]
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.info("training process started", extra={"pid": process.pid})
        return process

    def train(self, weights: Path, seed: int, out: Path) -> Hash:
        """Train from the weights at ``weights`` with ``seed`` and write the result to ``out``;
        its canonical hash. TrainingFailed (the round goes on without it) when the child fails,
        which is then replaced for the next training."""
        reply = self._ask({"weights": str(weights), "seed": seed, "out": str(out)}, "training")
        return Hash(bytes.fromhex(str(reply["hash"])))

    def evaluate(self, weights: Path, base: Path | None = None) -> Evaluation:
        """The per-sample results of the weights at ``weights`` (a contribution to the model at
        ``base``, if given) on the judging data (TrainingFailed when the child fails)."""
        request: dict[str, object] = {"op": "evaluate", "weights": str(weights)}
        if base is not None:
            request["base"] = str(base)
        reply = self._ask(request, "evaluation")
        correct, losses = reply["correct"], reply["losses"]
        assert isinstance(correct, list) and isinstance(losses, list)
        return Evaluation(np.array(correct, dtype=bool), np.array(losses, dtype=np.float32))

    def appraise(
        self,
        global_weights: Path,
        weights: Sequence[Path],
        aggregated: int,
        scores: Sequence[float],
        norms: Sequence[float],
        reputation: bool = False,
        arrival: Sequence[float] | None = None,
    ) -> list[float]:
        """Each of ``weights``' value as a contribution to ``global_weights`` (§3.5), the first
        ``aggregated`` aggregated, then their reputation values with ``reputation`` (§3.9); a
        copy of one that arrived earlier (``arrival``) is worth 0 (TrainingFailed when the
        child fails)."""
        request = {
            "op": "appraise",
            "global": str(global_weights),
            "weights": [str(path) for path in weights],
            "aggregated": aggregated,
            "scores": list(scores),
            "norms": list(norms),
            "reputation": reputation,
            "arrival": None if arrival is None else list(arrival),
        }
        values = self._ask(request, "appraisal")["values"]
        assert isinstance(values, list)
        return [float(value) for value in values]

    def _ask(self, request: dict[str, object], work: str) -> dict[str, object]:
        """The child's reply to ``request``, starting a child when none runs; TrainingFailed
        when it fails or dies (it is then replaced for the next request)."""
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self.restarts += self._started
                self._started = True
                self._process = self._start()
            process = self._process
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(json.dumps(request) + "\n")
                process.stdin.flush()
                line = process.stdout.readline()
            except OSError:
                line = ""
            if not line:  # the child died mid-request
                try:
                    returncode: int | None = process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    returncode = None
                self._process = None
                reason = describe_exit(returncode)
                log.warning("learner process failed in %s: %s; a new one starts", work, reason)
                self.on_failure("crash")
                raise TrainingFailed(f"the learner process ended ({reason})")
            reply: dict[str, object] = json.loads(line)
            if "error" in reply:
                log.warning("%s failed in the learner process: %s", work, reply["error"])
                self.on_failure("error")
                raise TrainingFailed(str(reply["error"]))
            return reply

    def close(self) -> None:
        """Stop the child."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
