"""Learning rounds with real model sizes: four validators train a 44 MB, 100 MB or 500 MB model.

Targets (issue #30), per size: every learning round commits an update; each validator's peak
RSS at most 4 x the model + 400 MB (training itself holds about three copies: the model, its
gradients and SGD's momentum); a round's wall time at most 1.3 x (the slowest training + one
evaluation), the overhead (wall minus those) reported in seconds (at 100 MB at most 5 s here);
disk per validator reported.

Real ``learnchain start`` processes from ``learnchain testnet`` (aggregate mode, Dirichlet 0.5
digits shards, the defaults otherwise, training that does not end: ``--plateau-rounds 0``) train
``bench/large_model_task.py``'s ``DeepMLP`` (a task plugin found through ``--task-path``), sized
to the model, with as many local epochs as make at least ``--train-seconds`` of training (timed
here first on one shard). Every node logs its ML work as intervals of the host's monotonic clock
and each commit (debug level). A round runs from one model update's commit to the next on node0;
its training is the slowest party's (its contribution), its evaluation the median party's scoring
of the proposal. The first update (start-up) is left out. Peak RSS is each process's VmHWM; CPU
outside training is each validator's CPU time over the measured rounds less its training; bytes
received are its ``learnchain_learning_weights_bytes_total{direction="received"}``.

Then, in the same run, Flower's deployment runtime trains the same model on the same shards with
the same local epochs (``bench/peers/flower_deployment.py``: a SuperLink and four SuperNodes,
FedAvg), and the same figures are taken of its rounds. The issue's comparison: per round, each
validator's CPU seconds outside training and the bytes it receives at most 1.5 x those of
Flower's server (its busiest process); on machines of their own those set each system's round
time. ``--no-flower`` leaves Flower out.

    .venv/bin/python bench/large_model.py [--sizes 44,100,500] [--rounds 3] [--train-seconds 20]

With ``--adapters`` (issue #31) each size is a frozen base instead: the validators fine-tune
``examples/adapters/lora_mlp.py``'s LoRA adapters (rank ``--rank``) and a new head on that
network, loaded from a pretrained file the bench writes (``--pretrained``). Target: at most
3 x (the adapters' size) x n bytes moved (received and sent) per validator per round; compare
its overhead with that of a model of the adapters' size (``--sizes 10``). Flower is left out.

    .venv/bin/python bench/large_model.py --sizes 500 --adapters --no-flower

With ``--network DELAY_MS,RATE_MBIT`` (issue #32; root) every validator is a host of its own (a
network namespace of the chaos bed, tests/chaos/network.py) behind a link of that one-way delay
and rate, and ``--codecs float32,int8,topk:0.01`` runs each size once per ``task.codec``: the
round overhead over a slow network, float32 against the codecs.

    .venv/bin/python bench/large_model.py --sizes 100 --validators 8 --network 50,100 \
        --codecs float32,topk:0.01 --no-flower

Prints a table per size, each followed by its JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from large_model_task import compute_parameters, compute_width
from processes import cpu_seconds

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
from flower_deployment import run_flower_rounds, summarise_rounds

from learnchain.node.localnet.cluster import LocalCluster
from learnchain.node.telemetry.logs import read_text_fields
from learnchain.proto import learnchain_pb2 as pb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.chaos.network import ChaosNetwork, LinkShape, find_missing

VALIDATORS = 4
BENCH = Path(__file__).resolve().parent
EXAMPLES = BENCH.parent / "examples" / "adapters"
TRAINING = ("propose", "accept_and_train", "encode")
EVALUATION = ("decide",)
# the rest of a round's ML work, by the learning worker's verb: checking arriving weights'
# hashes, aggregating (the proposer), re-computing a proposed aggregate, appraising contributions
OVERHEAD_WORK: dict[str, tuple[str, ...]] = {
    "check": ("check",),
    "aggregate": ("combine",),
    "verify": ("recompute",),
    "appraise": ("measure",),
    "accept": ("_accept",),
    "prepare": ("prepare", "_get_score"),  # scores on arrival, or those an appraisal still needs
}
MB = 1e6


def read_log(path: Path) -> tuple[list[tuple[str, float, float, float]], dict[int, float]]:
    """ML work (kind, start, end, its own CPU seconds) and commit times by height from one
    node's log."""
    work: list[tuple[str, float, float, float]] = []
    commits: dict[int, float] = {}
    for line in path.read_text().splitlines():
        fields = read_text_fields(line)
        if " ml work " in line:
            started, ended = float(fields["started"]), float(fields["ended"])
            work.append((fields["work"], started, ended, float(fields.get("cpu", ended - started))))
        elif " committed at " in line:
            commits[int(fields["height"])] = float(fields["at"])
    return work, commits


Work = list[tuple[str, float, float, float]]


def total_within(work: Work, kinds: tuple[str, ...], start: float, end: float) -> float:
    """Wall seconds of ``kinds`` work ending in (start, end]."""
    return sum(e - s for kind, s, e, _ in work if kind in kinds and start < e <= end)


def cpu_within(work: Work, kinds: tuple[str, ...], start: float, end: float) -> float:
    """CPU seconds of ``kinds`` work ending in (start, end]."""
    return sum(cpu for kind, _, e, cpu in work if kind in kinds and start < e <= end)


def read_peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / MB
    return math.nan


def find_learner_processes(parent: int) -> list[int]:
    """``parent``'s learner processes (config.toml ``trainer = "process"``)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and b"training_worker" in command:
            found.append(int(entry.name))
    return found


def read_disk_mb(folder: Path) -> float:
    """What the files under ``folder`` take on disk, in MB."""
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_blocks * 512
        except OSError:
            continue
    return total / MB


def read_weights_bytes(url: str, direction: str) -> float:
    """learnchain_learning_weights_bytes_total{direction=...} of one node."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith("learnchain_learning_weights_bytes_total") and direction in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@dataclass(frozen=True)
class BenchModel:
    """The task the validators train, as ``learnchain testnet`` options, and its sizes."""

    args: tuple[str, ...]
    description: str
    model_mb: float  # the whole model
    shared_mb: float  # what trains and travels (the adapters and head over a frozen base)


def describe_model(
    size_mb: float, depth: int, adapters: bool, rank: int, scratch: Path
) -> tuple[BenchModel, Any]:
    """The bench's model of ``size_mb`` (a DeepMLP, or LoRA adapters over a frozen base of that
    size, whose pretrained file is written under ``scratch``) and the task, built here."""
    from learnchain.ml.device import LocalSettings
    from learnchain.ml.tasks import TaskConfig, get_task
    from learnchain.ml.weights_file import WeightsLayout

    width = compute_width(size_mb, depth)
    model_mb = compute_parameters(width, depth) * 4 / MB
    shape: tuple[str, ...] = ("--task-param", f"width={width}", "--task-param", f"depth={depth}")
    if not adapters:
        name = "large_model_task:DeepMLP"
        args: tuple[str, ...] = ("--task", name, "--task-path", str(BENCH), *shape)
        task = get_task(TaskConfig(name=name, params={"width": width, "depth": depth}))
        description = f"DeepMLP width {width} depth {depth}"
        return BenchModel(args, description, model_mb, model_mb), task
    sys.path.insert(0, str(EXAMPLES))
    from lora_mlp import write_backbone

    pretrained = scratch / "base.safetensors"
    write_backbone(pretrained, width, depth, seed=1)
    name = "lora_mlp:LoRAMLP"
    # adapters on a wide frozen network take a smaller step than the whole model (at 0.05 with
    # momentum 0.9 a party's training diverged at width 6432)
    tuning = ("--task-param", f"rank={rank}", "--task-param", "learning_rate=0.01")
    args = ("--task", name, "--task-path", str(EXAMPLES), *shape, *tuning)
    params = {"width": width, "depth": depth, "rank": rank}
    config = TaskConfig(name=name, params=params, learning_rate=0.01)
    task = get_task(config, LocalSettings(pretrained=str(pretrained)))
    shared_mb = WeightsLayout.of_state(task.initial_weights()).file_size / MB
    description = f"LoRA rank {rank} on a frozen DeepMLP width {width} depth {depth}"
    return BenchModel(
        (*args, "--pretrained", str(pretrained)), description, model_mb, shared_mb
    ), task


def calibrate_epochs(task: Any, seconds: float, validators: int) -> tuple[int, float]:
    """Local epochs that take at least ``seconds`` on one shard with one thread, and one
    epoch's time (timed here, once)."""
    import torch

    from learnchain.ml.data import load_digits_party

    torch.set_num_threads(1)
    party, _ = load_digits_party(0, validators, "dirichlet:0.5", 0)
    model = task.initial_model()
    started = time.monotonic()
    task.train(model, party.train, 0, 1)
    epoch = time.monotonic() - started
    return max(1, math.ceil(seconds / epoch)), epoch


@dataclass
class Sampler:
    """Disk per validator, sampled every second while the testnet runs (the largest seen)."""

    homes: list[Path]
    disk_mb: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        self.disk_mb = [0.0] * len(self.homes)
        while not self._stop.wait(1.0):
            for i, home in enumerate(self.homes):
                self.disk_mb[i] = max(self.disk_mb[i], read_disk_mb(home / "data"))

    @contextmanager
    def running(self) -> Iterator[Sampler]:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()


def wait_for_updates(net: LocalCluster, updates: int, timeout: float) -> list[int]:
    """The heights of node0's first ``updates`` model updates, once committed."""
    deadline = time.monotonic() + timeout
    while True:
        net.check_alive()
        history = net[0].query.History(pb.HistoryRequest(from_height=1, limit=10000), timeout=30)
        heights = [e.height for e in history.entries if e.model_updated]
        if len(heights) >= updates:
            return heights[:updates]
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{len(heights)} of {updates} model updates in {timeout:.0f} s "
                f"(height {history.entries[-1].height if history.entries else 0})"
            )
        time.sleep(2)


def measure(
    size_mb: float,
    depth: int,
    rounds: int,
    train_seconds: float,
    keep: Path | None = None,
    flower: bool = True,
    adapters: bool = False,
    rank: int = 8,
    config: tuple[tuple[str, str], ...] = (),
    validators: int = VALIDATORS,
    codec: str = "float32",
    network: LinkShape | None = None,
    task_params: tuple[str, ...] = (),
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        model, task = describe_model(size_mb, depth, adapters, rank, Path(scratch))
        epochs, epoch_seconds = calibrate_epochs(task, train_seconds, validators)
        del task
        print(
            f"== {model.model_mb:.1f} MB ({model.shared_mb:.1f} MB shared): {model.description}, "
            f"{epochs} local epochs ({epoch_seconds:.2f} s each alone)",
            file=sys.stderr,
        )
        root = Path(scratch) / "net" if keep is None else keep / f"net-{size_mb:g}mb"
        hosts = contextlib.ExitStack()
        placement: dict[str, Any] = {}
        if network is not None:  # each validator a host of its own, behind a shaped link
            chaos = hosts.enter_context(ChaosNetwork(validators))
            chaos.heal(network)
            placement = {"starting_ip": chaos.address(0), "launcher": chaos.launcher}
        net = LocalCluster(
            root,
            validators,
            *model.args,
            *("--task-param", f"local_epochs={epochs}", "--partition", "dirichlet:0.5"),
            *("--plateau-rounds", "0", "--round-deadline", "3600"),
            *(("--task-param", f"codec={codec}") if codec != "float32" else ()),
            *(arg for param in task_params for arg in ("--task-param", param)),
            **placement,
        )
        with hosts, net, Sampler([net[i].home for i in range(validators)]).running() as sampler:
            net.configure_all("log_level", "debug")
            for key, value in config:
                net.configure_all(key, value)
            net.start_all()
            net.wait_for(range(validators), 0, timeout=300)
            timeout = 600 + 20 * (rounds + 1) * (epochs * epoch_seconds * validators / 2 + 30)
            first = wait_for_updates(net, 1, timeout)
            pids = [net[i].pid for i in range(validators)]
            cpu_start = [cpu_seconds(pid) for pid in pids]
            urls = [net[i].metrics_url for i in range(validators)]
            received_start = [read_weights_bytes(url, "received") for url in urls]
            sent_start = [read_weights_bytes(url, "sent") for url in urls]
            heights = wait_for_updates(net, rounds + 1, timeout)
            cpu_end = [cpu_seconds(pid) for pid in pids]
            received_end = [read_weights_bytes(url, "received") for url in urls]
            sent_end = [read_weights_bytes(url, "sent") for url in urls]
            peak_rss = [read_peak_rss_mb(pid) for pid in pids]
            child_rss = [sum(map(read_peak_rss_mb, find_learner_processes(pid))) for pid in pids]
            history = net[0].query.History(
                pb.HistoryRequest(from_height=1, limit=heights[-1]), timeout=30
            )
        logs = [read_log(net[i].log_path) for i in range(validators)]
        disk = list(sampler.disk_mb)
    commits = logs[0][1]
    rows: list[dict[str, Any]] = []
    print(
        f"{'height':>6} {'wall s':>7} {'train s':>8} {'eval s':>7} {'overhead s':>10} {'ratio':>6}"
    )
    for before, after in zip([first[0], *heights[1:-1]], heights[1:], strict=True):
        start, end = commits[before], commits[after]
        training = max(total_within(work, TRAINING, start, end) for work, _ in logs)
        evaluation = statistics.median(
            total_within(work, EVALUATION, start, end) for work, _ in logs
        )
        wall = end - start
        parts = {
            name: round(max(total_within(work, kinds, start, end) for work, _ in logs), 2)
            for name, kinds in OVERHEAD_WORK.items()
        }
        # the same work's own CPU (the wall time above includes waiting for a core: four
        # validators share two here; on machines of their own a round would take about this)
        parts_cpu = {
            name: round(max(cpu_within(work, kinds, start, end) for work, _ in logs), 2)
            for name, kinds in OVERHEAD_WORK.items()
        }
        rows.append(
            {
                "height": after,
                "wall_seconds": round(wall, 2),
                "training_seconds": round(training, 2),
                "evaluation_seconds": round(evaluation, 2),
                "overhead_seconds": round(wall - training - evaluation, 2),
                "ratio": round(wall / (training + evaluation), 3),
                "overhead_work_seconds_max": parts,
                "overhead_work_cpu_seconds_max": parts_cpu,
            }
        )
        row = rows[-1]
        print(
            f"{after:>6} {wall:>7.1f} {training:>8.1f} {evaluation:>7.1f} "
            f"{row['overhead_seconds']:>10.1f} {row['ratio']:>6.3f}  "
            + " ".join(f"{k} {v} ({parts_cpu[k]} cpu)" for k, v in parts.items())
        )
    window = commits[heights[-1]] - commits[first[0]]
    measured = len(rows)
    training_by_node = [
        cpu_within(work, TRAINING, commits[first[0]], commits[heights[-1]]) for work, _ in logs
    ]
    cpu_outside = [
        (cpu_end[i] - cpu_start[i] - training_by_node[i]) / measured for i in range(validators)
    ]
    received = [(received_end[i] - received_start[i]) / measured for i in range(validators)]
    sent = [(sent_end[i] - sent_start[i]) / measured for i in range(validators)]
    updates = [e.height for e in history.entries if e.model_updated]
    plain = [e.height for e in history.entries if not e.model_updated and e.height > first[0]]
    summary = {
        "bench": "large_model",
        "config": dict(config),
        "task_params": list(task_params),
        "validators": validators,
        "codec": codec,
        "network": None
        if network is None
        else {"one_way_delay_ms": network.delay_ms, "rate_mbit": network.rate_mbit},
        "model": model.description,
        "weights_mb": round(model.model_mb, 1),
        "shared_mb": round(model.shared_mb, 2),
        "local_epochs": epochs,
        "rounds": measured,
        "window_seconds": round(window, 1),
        "updates": len(updates),
        "plain_blocks_between": len(plain),
        "round_seconds_median": statistics.median(r["wall_seconds"] for r in rows),
        "training_seconds_median": statistics.median(r["training_seconds"] for r in rows),
        "evaluation_seconds_median": statistics.median(r["evaluation_seconds"] for r in rows),
        "overhead_seconds_median": statistics.median(r["overhead_seconds"] for r in rows),
        "ratio_max": max(r["ratio"] for r in rows),
        "peak_rss_mb": [round(v) for v in peak_rss],
        "learner_process_peak_rss_mb": [round(v) for v in child_rss],
        "rss_target_mb": round(4 * model.model_mb + 400),
        "disk_mb_max": [round(v) for v in disk],
        "cpu_seconds_outside_training_per_round": [round(v, 2) for v in cpu_outside],
        "received_mb_per_round": [round(v / MB, 1) for v in received],
        "moved_mb_per_round": [round((r + s) / MB, 2) for r, s in zip(received, sent, strict=True)],
        "moved_target_mb": round(3 * model.shared_mb * validators, 2),
    }
    if flower and not adapters:
        width = compute_width(size_mb, depth)
        params = {"width": width, "depth": depth, "local-epochs": epochs}
        flower_rounds = run_flower_rounds(
            validators, {**params, "partition": "dirichlet:0.5", "seed": 0}, rounds, timeout
        )
        summary["flower"] = summarise_rounds(flower_rounds)
        print_flower(summary)
    return summary


def print_flower(summary: dict[str, Any]) -> None:
    """Flower's rounds beside learnchain's, and the issue's two ratios (stored in ``summary``)."""
    flower = summary["flower"]
    cpu = max(summary["cpu_seconds_outside_training_per_round"])
    received = max(summary["received_mb_per_round"])
    summary["cpu_vs_flower_server"] = round(cpu / flower["server_busiest_cpu_seconds_per_round"], 2)
    summary["received_vs_flower_server"] = round(
        received / flower["server_received_mb_per_round"], 2
    )
    print(
        f"Flower (SuperLink + {summary['validators']} SuperNodes, FedAvg): round "
        f"{flower['round_seconds_median']} s, training {flower['training_seconds_median']} s, "
        f"overhead {flower['overhead_seconds_median']} s, ratio {flower['ratio_max']}"
    )
    print(
        f"per round: validator CPU outside training {cpu:.2f} s vs Flower's busiest server "
        f"process {flower['server_busiest_cpu_seconds_per_round']} s "
        f"(x{summary['cpu_vs_flower_server']}); received {received:.1f} MB vs "
        f"{flower['server_received_mb_per_round']} MB (x{summary['received_vs_flower_server']})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="44,100,500", help="model sizes in MB")
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="learning rounds measured")
    parser.add_argument("--train-seconds", type=float, default=20.0)
    parser.add_argument("--keep", type=Path, help="keep the testnets (and logs) under this folder")
    parser.add_argument("--no-flower", action="store_true", help="leave Flower's rounds out")
    parser.add_argument(
        "--adapters", action="store_true", help="LoRA adapters on a frozen base of each size"
    )
    parser.add_argument("--rank", type=int, default=8, help="the adapters' rank")
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config.toml setting for every validator (e.g. appraise=false, trainer=process)",
    )
    parser.add_argument(
        "--task-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a genesis task setting of every run (e.g. appraisal=first_order)",
    )
    parser.add_argument("--validators", type=int, default=VALIDATORS)
    parser.add_argument("--codecs", default="float32", help="task.codec of each run, in turn")
    parser.add_argument(
        "--network",
        metavar="DELAY_MS,RATE_MBIT",
        help="each validator in a network namespace of its own, every link with this one-way "
        "delay and rate (the chaos bed's network; needs root)",
    )
    args = parser.parse_args()
    config = tuple(tuple(item.split("=", 1)) for item in args.config)
    network = None
    if args.network:
        missing = find_missing()
        if missing is not None:
            sys.exit(f"large_model: {missing}")
        delay, rate = (float(v) for v in args.network.split(","))
        network = LinkShape(delay_ms=delay, rate_mbit=rate)
    for size, codec in ((s, c) for s in args.sizes.split(",") for c in args.codecs.split(",")):
        summary = measure(
            float(size),
            args.depth,
            args.rounds,
            args.train_seconds,
            args.keep,
            not args.no_flower,
            args.adapters,
            args.rank,
            config,
            args.validators,
            codec,
            network,
            tuple(args.task_param),
        )
        print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
