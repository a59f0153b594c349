"""A party: trains the global model on its digits shard, as a learnchain validator does, and
evaluates it on the shard's vote part (what a validator judges a proposal on)."""

from __future__ import annotations

import time

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


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Local epochs from the global model; the trained weights back."""
    torch.set_num_threads(1)
    task = make_task(context.run_config)
    model = task.build_model()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
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
    torch.set_num_threads(1)
    task = make_task(context.run_config)
    model = task.build_model()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
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
