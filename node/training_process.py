"""Training in a process of its own (config.toml ``trainer = "process"``), supervised by the node.

An organisation's training code is the part most likely to crash or run out of memory; in the
validator's own process it would take the validator with it. Here the learning worker hands
each training to a child process (``python -m learnchain.node.training_worker HOME``) that
builds the same learner from the home's genesis and config: it loads the global model from its
file, trains with the seed the node chose and writes the trained weights to the file it is
told. A crash, a signal or an out-of-memory there costs that round's contribution: the node
logs it once, counts it (``learnchain_learning_training_failures_total``) and starts a fresh
process for the next round, while it goes on voting. ``trainer_memory_mb`` caps the child's
memory, so a training that would exhaust the machine fails alone.

The protocol is one JSON line each way per training, over the child's stdin and stdout.

``trainer = "torchrun"`` runs each training as a job instead (``node/training_job.py``).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from learnchain.consensus.types import Hash
from learnchain.ml.errors import MLError

log = logging.getLogger("learnchain.node")


class TrainingFailed(MLError):
    """The training process failed this training (it crashed, was killed, or said why)."""


def describe_exit(returncode: int | None) -> str:
    """How a child process ended, in words ("killed by signal 9", "exit status 1")."""
    if returncode is None:
        return "it stopped answering"
    if returncode < 0:
        return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


class TrainingProcess:
    """The child process that trains, started on first use and again after a failure."""

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
        command = [sys.executable, "-m", "learnchain.node.training_worker", str(self.home)]
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
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self.restarts += self._started
                self._started = True
                self._process = self._start()
            process = self._process
            assert process.stdin is not None and process.stdout is not None
            request = {"weights": str(weights), "seed": seed, "out": str(out)}
            try:
                process.stdin.write(json.dumps(request) + "\n")
                process.stdin.flush()
                line = process.stdout.readline()
            except OSError:
                line = ""
            if not line:  # the child died mid-training
                try:
                    returncode: int | None = process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    returncode = None
                self._process = None
                reason = describe_exit(returncode)
                log.warning("training process failed: %s; a new one trains next round", reason)
                self.on_failure("crash")
                raise TrainingFailed(f"the training process ended ({reason})")
            reply = json.loads(line)
            if "error" in reply:
                log.warning("training failed in the training process: %s", reply["error"])
                self.on_failure("error")
                raise TrainingFailed(reply["error"])
            return Hash(bytes.fromhex(reply["hash"]))

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
