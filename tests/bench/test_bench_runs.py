"""A short run of each learning bench (one seed, a few rounds) ends in its JSON line, so a bench
cannot silently break as the code it measures changes. The figures are the benches' business;
these tests check that each runs end to end and reports what it promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_bench_process(
    script: str, *arguments: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``bench/SCRIPT`` run to its end, as a user runs it."""
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )


def run_bench(script: str, *arguments: str, timeout: float = 600) -> dict[str, Any]:
    """The last JSON line ``bench/SCRIPT`` prints (it must exit 0)."""
    shown = run_bench_process(script, *arguments, timeout=timeout)
    assert shown.returncode == 0, shown.stderr[-3000:]
    last = [line for line in shown.stdout.splitlines() if line.startswith("{")][-1]
    found: dict[str, Any] = json.loads(last)
    return found


SHORT = ("--seeds", "0", "--rounds", "3", "--local-only-epochs", "1", "--pooled-epochs", "1")


@pytest.mark.parametrize(
    "attack", ["min_max:1", "min_sum:1", "adaptive:1", "copycat:1", "noisy_copycat:1"]
)
def test_quality_runs_the_adaptive_attackers_and_free_riders_with_reputation(
    attack: str,
) -> None:
    found = run_bench(
        "quality.py", *SHORT, "--byzantine", attack, "--reputation", "0.95", "--output", "json"
    )
    assert found["byzantine"] == [attack.split(":")[0]] and found["reputation"] == 0.95
    assert 0.0 < found["final_accuracy_mean"] <= 1.0
    assert found["accepted"] + found["rejected"] == 3


@pytest.mark.parametrize(
    ("attack", "options"),
    [
        ("label_flip:1", ("--attackers-fresh", "--attackers-median-norm")),
        ("lazy:1", ("--attackers-median-norm",)),  # an empty update: nothing to scale
    ],
)
def test_quality_runs_attackers_who_skip_error_feedback_at_the_median_norm(
    attack: str, options: tuple[str, ...]
) -> None:
    found = run_bench(
        "quality.py",
        *SHORT,
        "--codec",
        "topk:0.01",
        "--byzantine",
        attack,
        *options,
        "--output",
        "json",
    )
    assert found["attackers_fresh"] is ("--attackers-fresh" in options)
    assert found["attackers_median_norm"] is True
    assert found["accepted"] + found["rejected"] == 3


def test_a_backdoor_run_reports_what_the_trigger_reaches_without_any_attack() -> None:
    found = run_bench(
        "quality.py",
        *SHORT,
        "--byzantine",
        "backdoor:1",
        "--backdoor-target",
        "3",
        "--output",
        "json",
    )
    assert found["backdoor_target"] == 3
    assert 0.0 <= found["attack_success_rate_mean"] <= 1.0
    assert 0.0 <= found["trigger_natural_rate_mean"] <= 1.0
    clean = run_bench("quality.py", *SHORT, "--output", "json")
    assert clean["attack_success_rate_mean"] is None and clean["trigger_natural_rate_mean"] is None


def test_a_backdoor_target_outside_the_classes_is_a_one_line_error() -> None:
    shown = run_bench_process(
        "quality.py", *SHORT, "--byzantine", "backdoor:1", "--backdoor-target", "10"
    )
    assert shown.returncode != 0
    assert shown.stderr.strip() == (
        "error: --backdoor-target 10 is not a class of this data (0 to 9)"
    )


def test_quality_runs_on_a_data_file(tmp_path: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    rows = ["f" + ",f".join(str(i) for i in range(data.data.shape[1])) + ",label"]
    rows += [",".join(map(str, x)) + f",{y}" for x, y in zip(data.data, data.target, strict=True)]
    path = tmp_path / "cancer.csv"
    path.write_text("\n".join(rows) + "\n")
    found = run_bench("quality.py", *SHORT, "--data-file", str(path), "--output", "json")
    assert found["task"] == "tabular-mlp" and found["data_file"] == str(path)
    assert found["final_accuracy_mean"] > 0.5


@pytest.mark.parametrize("appraisal", ["exact", "first_order"])
def test_incentives_runs_and_its_tokens_add_up(appraisal: str) -> None:
    found = run_bench("incentives.py", "--rounds", "3", "--seeds", "0", "--appraisal", appraisal)
    assert found["tokens_conserved"] is True and found["rounds"] == 3


@pytest.mark.parametrize("codec", ["float32", "topk:0.01"])
def test_the_critical_path_bench_times_every_part(codec: str) -> None:
    found = run_bench(
        "critical_path.py", "--size", "2", "--validators", "3", "--codec", codec, "--repeats", "1"
    )
    assert set(found["cpu_seconds"]) == {"prepare", "aggregate", "decide", "appraise"}
    assert found["codec"] == codec and found["weights_mb"] > 1


@pytest.mark.slow
def test_the_outer_optimizer_bench_runs() -> None:
    found = run_bench(
        "outer_optimizer.py",
        "--seeds",
        "0",
        "--steps",
        "1:0.7",
        "--local-epochs",
        "1",
        "--rounds",
        "2",
        "--jobs",
        "1",
    )
    assert found["bench"] == "outer_optimizer" and found["rows"]


@pytest.mark.slow
def test_the_codec_bench_runs() -> None:
    found = run_bench(
        "update_codecs.py",
        "--seeds",
        "0",
        "--codecs",
        "float32,int8",
        "--attacks",
        "ipm:1",
        "--rounds",
        "2",
        "--jobs",
        "1",
    )
    assert found["bench"] == "codecs" and found["rows"]


@pytest.mark.flower
def test_the_flower_side_by_side_runs_both_sides_on_a_new_attack() -> None:
    found = run_bench(
        "peers/flower.py",
        "--seeds",
        "0",
        "--rounds",
        "2",
        "--scenarios",
        "none,min_max:1",
        "--strategies",
        "FedAvg,FedMedian",
        "--learnchain",
        "--reputation",
        "0.95",
        timeout=1800,
    )
    assert set(found["table"]) == {"learnchain", "Flower FedAvg", "Flower FedMedian"}
    assert set(found["table"]["Flower FedMedian"]) == {"none", "min_max:1"}
    assert found["learnchain_options"] == ["--reputation", "0.95"]
