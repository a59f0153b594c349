"""The training process's side (``python -m learnchain.node.training_worker HOME``): the node's
learner, built from the home's genesis and config as the node builds it, training on request.

Each request is a JSON line on stdin, ``{"weights": PATH, "seed": N, "out": PATH}``: load the
global model from ``weights`` (checked against the model's layout), train with ``seed``, write
the trained weights to ``out``; the reply is ``{"hash": HEX}`` or ``{"error": "why"}`` on stdout.
The process ends when stdin closes (the node stopped or let it go).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

from learnchain.ml.learner import Learner
from learnchain.ml.plugins import add_plugin_folders
from learnchain.ml.weights_file import StateSource, WeightsFile, iter_source, write_weights


def limit_memory(megabytes: int) -> None:
    """Cap this process's data memory (heap and anonymous maps): an allocation past it fails
    here, as an error, instead of the machine running out."""
    limit = megabytes << 20
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def load_worker_learner(home: Path) -> Learner:
    """The learner the node at ``home`` trains with."""
    from learnchain.node.files import get_task_folders, read_config, read_genesis
    from learnchain.node.learning import compute_local_settings, load_learner

    config = read_config(home)
    genesis = read_genesis(home)
    add_plugin_folders(get_task_folders(home, config))
    local = compute_local_settings(home, config)
    return load_learner(genesis.task, config.data, config.data.party, config.attack, local)


def train_once(learner: Learner, request: dict[str, object]) -> bytes:
    """Train from the request's weights with its seed and write them to its ``out``; the hash."""
    task = learner.task
    weights = WeightsFile(
        Path(str(request["weights"])), learner.layout, task.config.max_weights_bytes
    )
    learner.accept(weights)
    seed = request["seed"]
    assert isinstance(seed, int)
    trained = learner.propose_view(seed)
    out = Path(str(request["out"]))
    return write_weights(out, learner.layout, iter_source(StateSource(trained), learner.layout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("home", type=Path)
    parser.add_argument("--memory-mb", type=int, default=0)
    args = parser.parse_args()
    replies, sys.stdout = sys.stdout, sys.stderr  # whatever else prints cannot garble replies
    learner = load_worker_learner(args.home)
    import torch

    torch.set_num_threads(learner.task.local.threads)
    if args.memory_mb:
        limit_memory(args.memory_mb)
    for line in sys.stdin:
        try:
            reply = {"hash": train_once(learner, json.loads(line)).hex()}
        except (Exception, MemoryError) as error:  # the node counts it; the next round retries
            reply = {"error": f"{type(error).__name__}: {error}"[:500]}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
