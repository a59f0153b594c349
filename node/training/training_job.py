"""Each training as a ``torchrun`` job (config.toml ``trainer = "torchrun"``).

An organisation whose training needs several processes (GPUs, or machines) trains each contribution
as a job of ``trainer_processes`` processes (``torchrun --standalone``: on this machine, gloo;
DistributedDataParallel across them, ``ml/distributed.py``), started for the round and gone after
it, as NVIDIA FLARE runs a site's training as a job. The job's processes run ``python -m
learnchain.node.training.training_worker HOME --request JSON``; rank 0 writes the weights and a
reply file beside them. A failed job costs that round's contribution and is counted, as a failed
training process is (``node/training/training_process.py``). Evaluations and appraisals, a few
forward passes each, go to the learner process this class otherwise is (a job per verdict would
start torch every time).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from learnchain.consensus.types import Hash
from learnchain.node.training.training_process import TrainingFailed, TrainingProcess, describe_exit

log = logging.getLogger("learnchain.node")


class TrainingJob(TrainingProcess):
    """A learner process (evaluations and appraisals) whose trainings are torchrun jobs of
    ``processes`` processes each."""

    def __init__(
        self,
        home: Path,
        processes: int,
        memory_mb: int = 0,
        on_failure: Callable[[str], None] = lambda _reason: None,
    ) -> None:
        super().__init__(home, memory_mb, on_failure)  # memory_mb caps each job process too
        self.processes = processes

    def train(self, weights: Path, seed: int, out: Path) -> Hash:
        """Train from the weights at ``weights`` with ``seed`` in one job that writes the result
        to ``out``; its canonical hash. TrainingFailed (the round goes on without it) when the
        job fails before rank 0 has written the weights."""
        request = json.dumps({"weights": str(weights), "seed": seed, "out": str(out)})
        command = [
            sys.executable,
            *("-m", "torch.distributed.run", "--standalone"),
            *("--nproc-per-node", str(self.processes)),
            *(
                "-m",
                "learnchain.node.training.training_worker",
                str(self.home),
                "--request",
                request,
            ),
        ]
        if self.memory_mb:
            command += ["--memory-mb", str(self.memory_mb)]
        reply_path = Path(f"{out}.reply")
        try:
            done = subprocess.run(command, stdin=subprocess.DEVNULL, check=False)
            reply = json.loads(reply_path.read_text()) if reply_path.exists() else {}
        finally:
            reply_path.unlink(missing_ok=True)
        if "hash" in reply and out.exists():  # written and renamed whole before the reply
            if done.returncode != 0:  # a process of the job failed after the weights were out
                log.warning("the torchrun job ended (%s)", describe_exit(done.returncode))
            return Hash(bytes.fromhex(reply["hash"]))
        out.unlink(missing_ok=True)
        reason = reply.get("error") or f"the torchrun job ended ({describe_exit(done.returncode)})"
        log.warning("training failed in its torchrun job: %s", reason)
        self.on_failure("error" if "error" in reply else "crash")
        raise TrainingFailed(reason)
