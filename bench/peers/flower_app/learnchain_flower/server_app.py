"""Flower's FedAvg over the SuperNodes, measured per round: the wall time from sending the
global model to the last evaluation reply, the slowest party's training, the median evaluation,
the weights bytes the server receives and the CPU seconds of each server process (the SuperLink
and what it runs: the ServerApp), one JSON line a round to ``$LEARNCHAIN_FLOWER_OUT``."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Iterable
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from .task import make_task

app = ServerApp()
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def read_process_tree(root: int) -> list[int]:
    """``root`` and every process below it."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    tree, frontier = [root], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        tree += children
        frontier = children
    return tree


def read_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of one process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def read_role(pid: int) -> str:
    """A server process's role from its command line (``flower-superlink``, ``flwr-serverapp``,
    ...)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "gone"
    words = [Path(a.decode()).name for a in argv[:2] if a]
    named = [w for w in words if w.startswith("fl")]
    return named[0] if named else " ".join(words)


def read_server_cpu() -> dict[str, float]:
    """CPU seconds by server process (``role:pid``) under the SuperLink."""
    root = int(Path(os.environ["LEARNCHAIN_FLOWER_SUPERLINK_PID_FILE"]).read_text())
    return {f"{read_role(pid)}:{pid}": read_cpu_seconds(pid) for pid in read_process_tree(root)}


def count_reply_bytes(content: RecordDict) -> int:
    """The bytes of a reply's arrays and metrics."""
    records = [
        *content.array_records.values(),
        *content.metric_records.values(),
        *content.config_records.values(),
    ]
    return sum(record.count_bytes() for record in records)


class MeasuredFedAvg(FedAvg):
    """FedAvg unchanged, with a JSON line of figures per round."""

    def __init__(self, out: Path, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.out = out
        self.round: dict[str, object] = {}

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self.round = {
            "round": server_round,
            "started": time.monotonic(),
            "cpu_started": read_server_cpu(),
        }
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        self.round["received_bytes"] = sum(
            count_reply_bytes(m.content) for m in replies if m.has_content()
        )
        self.round["train_seconds"] = [
            float(m.content["metrics"]["train-seconds"]) for m in replies if m.has_content()
        ]
        return super().aggregate_train(server_round, replies)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        replies = list(replies)
        metrics = super().aggregate_evaluate(server_round, replies)
        contents = [m.content for m in replies if m.has_content()]
        self.round["received_bytes"] = int(self.round["received_bytes"]) + sum(  # type: ignore[call-overload]
            count_reply_bytes(c) for c in contents
        )
        self.round["eval_seconds"] = statistics.median(
            float(c["metrics"]["eval-seconds"]) for c in contents
        )
        self.round["accuracy"] = statistics.fmean(float(c["metrics"]["accuracy"]) for c in contents)
        self.round["ended"] = time.monotonic()
        self.round["cpu_ended"] = read_server_cpu()
        with self.out.open("a") as out:
            out.write(json.dumps(self.round) + "\n")
        return metrics


@app.main()
def main(grid: Grid, context: Context) -> None:
    """FedAvg over every SuperNode for ``num-server-rounds`` rounds from the task's genesis
    model."""
    nodes = int(os.environ.get("LEARNCHAIN_FLOWER_NODES", "4"))
    out = Path(os.environ["LEARNCHAIN_FLOWER_OUT"])
    task = make_task(context.run_config)
    initial = ArrayRecord(task.initial_model().state_dict())
    strategy = MeasuredFedAvg(
        out,
        min_train_nodes=nodes,
        min_evaluate_nodes=nodes,
        min_available_nodes=nodes,
    )
    ending: dict[str, object] = {"done": True}
    try:
        strategy.start(
            grid=grid,
            initial_arrays=initial,
            num_rounds=int(context.run_config["num-server-rounds"]),
        )
    except Exception as error:
        ending["error"] = repr(error)
        raise
    finally:
        with out.open("a") as done:
            done.write(json.dumps(ending) + "\n")
