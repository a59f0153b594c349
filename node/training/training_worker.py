"""The learner process's side (``python -m learnchain.node.training.training_worker HOME``): the
node's learner, built from the home's genesis and config as the node builds it, training and
evaluating on request.

Each request is a JSON line on stdin, answered by one on stdout (``{"error": "why"}`` when it
fails):

- ``{"weights": PATH, "seed": N, "out": PATH}``: load the global model from ``weights`` (checked
  against the model's layout), train with ``seed``, write the trained weights to ``out``; the
  reply is ``{"hash": HEX}``.
- ``{"op": "evaluate", "weights": PATH}``: the weights' per-sample results on the judging data,
  ``{"correct": [0|1, ...], "losses": [...]}`` (the node's vote rule decides on them); with
  ``"base": PATH``, of a contribution to that model (``task.codec``).
- ``{"op": "appraise", "global": PATH, "weights": [PATH, ...], "aggregated": K, "scores": [...],
  "norms": [...], "reputation": BOOL, "arrival": [...] | null}``: each contribution's value to
  the global model (§3.5), then with ``reputation`` each one's reputation value (§3.9); a copy
  of one that arrived earlier is worth 0; ``{"values": [...]}``.

The process ends when stdin closes (the node stopped or let it go).

With ``--request JSON`` it trains once and ends, writing the reply to ``out`` + ``.reply``: how a
``torchrun`` job runs it (config.toml ``trainer = "torchrun"``), every process of the job
training its share of the data under DistributedDataParallel (``ml/distributed.py``) and rank 0
writing the weights and the reply.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
from pathlib import Path

from learnchain.ml.codec import StateDict
from learnchain.ml.learner import Learner
from learnchain.ml.plugins import add_plugin_folders
from learnchain.ml.update_codec import open_contribution, parse_codec
from learnchain.ml.weights_file import (
    StateSource,
    TensorSource,
    WeightsFile,
    iter_source,
    write_weights,
)


def limit_memory(megabytes: int) -> None:
    """Cap this process's data memory (heap and anonymous maps): an allocation past it fails
    here, as an error, instead of the machine running out."""
    limit = megabytes << 20
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def load_worker_learner(home: Path) -> Learner:
    """The learner the node at ``home`` trains with."""
    from learnchain.node.home.files import get_task_folders, read_config, read_genesis
    from learnchain.node.training.learning_worker import compute_local_settings, load_learner

    config = read_config(home)
    genesis = read_genesis(home)
    add_plugin_folders(get_task_folders(home, config))
    local = compute_local_settings(home, config)
    return load_learner(genesis.task, config.data, config.data.party, config.attack, local)


def accept_request(learner: Learner, request: dict[str, object]) -> tuple[int, Path]:
    """Make the request's weights (checked against the model's layout) the learner's global
    model; the request's seed and where its trained weights go."""
    learner.accept(open_weights(learner, request["weights"]))
    seed = request["seed"]
    assert isinstance(seed, int)
    return seed, Path(str(request["out"]))


def write_trained(learner: Learner, trained: StateDict, out: Path) -> bytes:
    """Write trained weights to ``out``; their canonical hash."""
    return write_weights(out, learner.layout, iter_source(StateSource(trained), learner.layout))


def train_once(learner: Learner, request: dict[str, object]) -> bytes:
    """Train from the request's weights with its seed and write them to its ``out``; the hash."""
    seed, out = accept_request(learner, request)
    return write_trained(learner, learner.propose_view(seed), out)


def open_weights(learner: Learner, path: object) -> WeightsFile:
    """A request's weights file, checked against the model's layout."""
    return WeightsFile(Path(str(path)), learner.layout, learner.task.config.max_weights_bytes)


def open_contribution_of(learner: Learner, path: object, base: TensorSource) -> TensorSource:
    """A request's contribution to ``base`` (``task.codec``)."""
    config = learner.task.config
    codec = parse_codec(config.codec)
    return open_contribution(Path(str(path)), base, codec, learner.layout, config.max_weights_bytes)


def evaluate_once(learner: Learner, request: dict[str, object]) -> dict[str, object]:
    """The request's weights' (or contribution's, to its ``base``) per-sample results on the
    judging data."""
    if "base" in request:
        base = open_weights(learner, request["base"])
        source = open_contribution_of(learner, request["weights"], base)
    else:
        source = open_weights(learner, request["weights"])
    evaluation = learner.evaluate(source)
    return {
        "correct": evaluation.correct.astype(int).tolist(),
        "losses": evaluation.losses.tolist(),
    }


def appraise_once(learner: Learner, request: dict[str, object]) -> dict[str, object]:
    """The request's contributions' values to its global model."""
    import torch

    learner.accept(open_weights(learner, request["global"]))
    paths, scores, norms = request["weights"], request["scores"], request["norms"]
    aggregated = request["aggregated"]
    assert isinstance(paths, list) and isinstance(scores, list) and isinstance(norms, list)
    assert isinstance(aggregated, int)
    sources = [open_contribution_of(learner, path, learner.global_source) for path in paths]
    norms_tensor = torch.tensor(norms, dtype=torch.float64)
    reputation = bool(request.get("reputation", False))
    arrival = request.get("arrival")
    assert arrival is None or isinstance(arrival, list)
    values = learner.appraise(
        sources, aggregated, scores, norms_tensor, reputation=reputation, arrival=arrival
    )
    return {"values": values}


def answer(learner: Learner, request: dict[str, object]) -> dict[str, object]:
    """The reply to one request."""
    op = request.get("op", "train")
    if op == "evaluate":
        return evaluate_once(learner, request)
    if op == "appraise":
        return appraise_once(learner, request)
    return {"hash": train_once(learner, request).hex()}


def train_in_job(learner: Learner, request: dict[str, object]) -> None:
    """One training by every process of a torchrun job (or by this one alone); rank 0 writes
    the weights and the reply file."""
    import torch.distributed as dist

    from learnchain.ml.distributed import train_distributed

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if distributed else 0
    reply_path = Path(f"{request['out']}.reply")
    try:
        seed, out = accept_request(learner, request)
        trained = train_distributed(learner, seed) if distributed else learner.propose_view(seed)
        if rank == 0:
            reply_path.write_text(json.dumps({"hash": write_trained(learner, trained, out).hex()}))
    except Exception as error:
        if rank == 0:
            reply_path.write_text(json.dumps({"error": describe_error(error)}))
        raise SystemExit(1) from None
    finally:
        if distributed:
            dist.barrier()  # every rank done before any tears the group down
            dist.destroy_process_group()


def describe_error(error: BaseException) -> str:
    """A training's failure in one line."""
    return f"{type(error).__name__}: {error}"[:500]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("home", type=Path)
    parser.add_argument("--memory-mb", type=int, default=0)
    parser.add_argument("--request", help="train once (a torchrun job's processes)")
    args = parser.parse_args()
    replies, sys.stdout = sys.stdout, sys.stderr  # whatever else prints cannot garble replies
    learner = load_worker_learner(args.home)
    import torch

    torch.set_num_threads(learner.task.local.threads)
    if args.memory_mb:
        limit_memory(args.memory_mb)
    if args.request:
        train_in_job(learner, json.loads(args.request))
        return
    for line in sys.stdin:
        try:
            reply = answer(learner, json.loads(line))
        except (Exception, MemoryError) as error:  # the node counts it; the next round retries
            reply = {"error": describe_error(error)}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
