"""One validator's machine-learning work on a learning round's critical path, alone on a core
(issue #32's 3 s target, as on hosts of their own).

On the slow-network bed (``bench/large_model.py --validators 8 --network 50,100``) eight
validators share this machine's two cores, so each one's work after the last contribution arrives
takes about four times its CPU in wall time, and the CPU of memory-bound work rises too as the
processes share caches. This bench does that work once, in one process with one thread and
nothing else running, on the same ``DeepMLP`` (``bench/large_model_task.py``) and digits shard,
with the node's own functions and files:

- ``prepare``: the last contribution to arrive, decoded from its file, measured (its update's
  norm) and scored on the vote set;
- ``aggregate``: the clipped mean of every contribution plus the server step (with the default
  genesis's momentum, from the model before this one), written slice by slice to a weights file
  and hashed, as a validator computes the proposed model itself (§3.7, §3.8); each update's norm
  was measured as it arrived (``prepare``);
- ``decide``: the vote set's evaluation of that model (the vote);
- ``appraise``: every contribution's value (§3.5), with the copies' Gram matrix, by the genesis's
  ``task.appraisal``.

The contributions are the model plus Gaussian updates of 10⁻³ (training them is not on the path;
their content does not change what this work costs), encoded by ``--codec`` as a contributor's
error feedback encodes them. The network's part is not measured here: the contributions' bytes
over the link, and the votes' delays.

    .venv/bin/python bench/critical_path.py [--size 100] [--validators 8] [--codec topk:0.01]
        [--appraisal exact|first_order] [--repeats 3] [--threads 1]

Prints each part's CPU and wall seconds (each the least of the repeats) and, last, one JSON
line. With one thread the two are about equal; with more, wall time is what the round waits.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from large_model_task import compute_width

from learnchain.ml.aggregate import (
    ListedSource,
    compute_update_norms,
    get_aggregation_rule,
    iter_aggregate,
)
from learnchain.ml.config import APPRAISALS, TaskConfig
from learnchain.ml.data import load_digits_party
from learnchain.ml.error_feedback import ErrorFeedback
from learnchain.ml.learner import Learner
from learnchain.ml.tasks import get_task
from learnchain.ml.update_codec import (
    UpdateCodec,
    open_contribution,
    parse_codec,
)
from learnchain.ml.weights_file import (
    StateSource,
    TensorSource,
    WeightsFile,
    WeightsLayout,
    iter_source,
    write_weights,
)

DEPTH = 4


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=float, default=100.0, help="the model's size in MB")
    parser.add_argument("--validators", type=int, default=8, help="contributions a round")
    parser.add_argument("--codec", default="topk:0.01")
    parser.add_argument("--appraisal", choices=APPRAISALS, default=TaskConfig().appraisal)
    parser.add_argument("--aggregation", default=TaskConfig().aggregation, help="the rule")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch's threads (config.toml threads; 1 default)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    summary = measure(
        args.size, args.validators, args.codec, args.appraisal, args.repeats, args.aggregation
    )
    walls = summary["wall_seconds"]
    for part, seconds in summary["cpu_seconds"].items():
        print(f"{part:<10} {seconds:6.3f} CPU-s {walls[part]:6.3f} s")
    total = summary["cpu_seconds_total"]
    print(f"{'total':<10} {total:6.3f} CPU-s {summary['wall_seconds_total']:6.3f} s")
    print(json.dumps(summary), flush=True)


def measure(
    size_mb: float,
    validators: int,
    codec_name: str,
    appraisal: str,
    repeats: int,
    aggregation: str = TaskConfig().aggregation,
) -> dict[str, Any]:
    """Each part's least CPU seconds over ``repeats`` (see the module)."""
    width = compute_width(size_mb, DEPTH)
    params = {"width": width, "depth": DEPTH}
    config = TaskConfig(
        name="large_model_task:DeepMLP",
        params=params,
        codec=codec_name,
        appraisal=appraisal,
        aggregation=aggregation,
    )
    learner = Learner(get_task(config), load_digits_party(0, validators, "dirichlet:0.5", 0)[0])
    codec = parse_codec(codec_name)
    base = learner.current()
    layout = WeightsLayout.of_state(base)
    base_source = learner.global_source  # contributions decode against it, as on a node
    with tempfile.TemporaryDirectory() as scratch:
        paths = write_contributions(Path(scratch), base, layout, codec, validators)
        contribution_mb = sum(p.stat().st_size for p in paths) / len(paths) / 1e6

        def open_all() -> list[TensorSource]:
            return [open_contribution(p, base_source, codec, layout, 1 << 40) for p in paths]

        aggregate_path = Path(scratch) / "aggregate.safetensors"
        # the model before this one: the server momentum's last step (§3.8), read in full
        previous = StateSource({k: v - 1e-3 for k, v in base.items()})
        # each update's norm and score are measured as it arrives (``prepare``): not on the path
        norms = compute_update_norms(base_source, open_all(), layout)

        def prepare() -> None:
            last = open_all()[-1]
            compute_update_norms(base_source, [last], layout)
            learner.score(last)

        def aggregate() -> None:
            sources = open_all()
            listed = [ListedSource(str(i), s, 100) for i, s in enumerate(sources)]
            rule = get_aggregation_rule(config.aggregation)
            rule.population = validators
            slices = iter_aggregate(
                base_source,
                listed,
                rule,
                layout,
                config.server_momentum,
                previous,
                norms,
                config.server_learning_rate,
            )
            write_weights(aggregate_path, layout, slices)

        def decide() -> None:
            learner.vote(WeightsFile(aggregate_path, layout, 1 << 40))

        def appraise() -> None:
            sources = open_all()
            scores = [0.5] * len(sources)
            arrival = [float(i) for i in range(len(sources))]
            learner.appraise(sources, len(sources), scores, norms, arrival=arrival)

        parts: dict[str, Callable[[], None]] = {
            "prepare": prepare,
            "aggregate": aggregate,
            "decide": decide,
            "appraise": appraise,
        }
        times = {name: [timed(work) for _ in range(repeats)] for name, work in parts.items()}
    cpu = {name: min(t[0] for t in runs) for name, runs in times.items()}
    wall = {name: min(t[1] for t in runs) for name, runs in times.items()}
    return {
        "bench": "critical_path",
        "size_mb": size_mb,
        "weights_mb": round(sum(t.numel() * t.element_size() for t in base.values()) / 1e6, 1),
        "validators": validators,
        "codec": codec_name,
        "aggregation": aggregation,
        "appraisal": appraisal,
        "contribution_mb": round(contribution_mb, 2),
        "cpu_seconds": {name: round(seconds, 3) for name, seconds in cpu.items()},
        "cpu_seconds_total": round(sum(cpu.values()), 3),
        "wall_seconds": {name: round(seconds, 3) for name, seconds in wall.items()},
        "wall_seconds_total": round(sum(wall.values()), 3),
        "threads": torch.get_num_threads(),
    }


def write_contributions(
    folder: Path,
    base: dict[str, torch.Tensor],
    layout: WeightsLayout,
    codec: UpdateCodec,
    count: int,
) -> list[Path]:
    """``count`` contributions (the model plus Gaussian updates), encoded and written as a
    contributor writes them."""
    encoded_layout = layout if codec.sends_weights else codec.compute_encoded_layout(layout)
    generator = torch.Generator().manual_seed(0)
    paths = []
    for i in range(count):
        trained = {k: v + 1e-3 * torch.randn(v.shape, generator=generator) for k, v in base.items()}
        if codec.sends_weights:
            state = trained
        else:
            state = ErrorFeedback(codec).encode(StateSource(trained), StateSource(base), layout)
        path = folder / f"contribution-{i}.safetensors"
        write_weights(path, encoded_layout, iter_source(StateSource(state), encoded_layout))
        paths.append(path)
    return paths


def timed(work: Callable[[], None]) -> tuple[float, float]:
    """The CPU seconds (this process's) and wall seconds ``work`` takes."""
    cpu, wall = time.process_time(), time.perf_counter()
    work()
    return time.process_time() - cpu, time.perf_counter() - wall


if __name__ == "__main__":
    main()
