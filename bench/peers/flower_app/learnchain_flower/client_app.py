"""A party: trains the global model on its digits shard, as a learnchain validator does, and
evaluates it on the shard's vote part (what a validator judges a proposal on)."""

from __future__ import annotations

import time
from typing import Any

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from learnchain.ml.data import load_digits_party

from .task import make_task

app = ClientApp()


def load_party(context: Context):  # type: ignore[no-untyped-def]
    """This SuperNode's shard (``--node-config partition-id=I num-partitions=N``)."""
    party, _ = load_digits_party(
        int(context.node_config["partition-id"]),
        int(context.node_config["num-partitions"]),
        str(context.run_config["partition"]),
        int(context.run_config["seed"]),
    )
    return party


def load_global_model(msg: Message, context: Context) -> tuple[Any, torch.nn.Module]:
    """The task and its model holding the message's global weights (one thread, as a
    validator trains)."""
    torch.set_num_threads(1)
    task = make_task(context.run_config)
    model = task.build_model()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    return task, model


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Local epochs from the global model; the trained weights back."""
    task, model = load_global_model(msg, context)
    party = load_party(context)
    started = time.monotonic()
    task.train(model, party.train, int(msg.content["config"].get("server-round", 0)))
    trained = time.monotonic() - started
    metrics = MetricRecord({"num-examples": len(party.train.y), "train-seconds": trained})
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """The global model's accuracy on this party's vote part."""
    task, model = load_global_model(msg, context)
    party = load_party(context)
    started = time.monotonic()
    evaluation = task.evaluate(model, party.vote)
    seconds = time.monotonic() - started
    metrics = {
        "num-examples": len(party.vote.y),
        "accuracy": float(evaluation.accuracy),
        "eval-seconds": seconds,
    }
    return Message(content=RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)
