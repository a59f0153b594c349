"""Flower's deployment runtime on this machine, for ``bench/large_model.py``: a SuperLink and
one SuperNode per party as processes of their own on loopback (Flower's own environment,
``bench/peers/.venv-flower``), running ``bench/peers/flower_app`` (FedAvg over the same model,
shards and training as learnchain's validators) with ``flwr run``.

The ServerApp writes one JSON line a round (``flower_app/learnchain_flower/server_app.py``);
``run_flower_rounds`` returns the measured rounds' figures: the round's wall time, the slowest
party's training, the median evaluation, the bytes the server receives and the CPU seconds of
each server process (the SuperLink and the ServerApp it runs).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flower import ensure_flower_environment

from learnchain.node.home.testnet import find_free_base_port

HERE = Path(__file__).resolve().parent
APP = HERE / "flower_app"
BENCH = HERE.parent
ROOT = BENCH.parent


@dataclass(frozen=True)
class FlowerRound:
    """One measured FedAvg round."""

    wall_seconds: float
    training_seconds: float  # the slowest party's
    evaluation_seconds: float  # the median party's
    received_bytes: int  # by the server: every party's trained weights (and metrics)
    cpu_seconds: dict[str, float]  # by server process (role:pid)

    @property
    def overhead_seconds(self) -> float:
        """The round's wall time less the slowest training and one evaluation."""
        return self.wall_seconds - self.training_seconds - self.evaluation_seconds

    @property
    def busiest_cpu_seconds(self) -> float:
        """The CPU seconds of the server's busiest process this round."""
        return max(self.cpu_seconds.values())


def compute_round(line: dict[str, Any]) -> FlowerRound:
    """A round's figures from the ServerApp's JSON line."""
    started, ended = line["cpu_started"], line["cpu_ended"]
    return FlowerRound(
        wall_seconds=line["ended"] - line["started"],
        training_seconds=max(line["train_seconds"]),
        evaluation_seconds=line["eval_seconds"],
        received_bytes=line["received_bytes"],
        cpu_seconds={p: ended[p] - started.get(p, 0.0) for p in ended},
    )


def summarise_rounds(rounds: list[FlowerRound]) -> dict[str, Any]:
    """Medians over the measured rounds, as ``bench/large_model.py`` prints them."""
    return {
        "rounds": len(rounds),
        "round_seconds_median": round(statistics.median(r.wall_seconds for r in rounds), 2),
        "training_seconds_median": round(statistics.median(r.training_seconds for r in rounds), 2),
        "overhead_seconds_median": round(statistics.median(r.overhead_seconds for r in rounds), 2),
        "ratio_max": round(
            max(r.wall_seconds / (r.training_seconds + r.evaluation_seconds) for r in rounds), 3
        ),
        "server_busiest_cpu_seconds_per_round": round(
            statistics.median(r.busiest_cpu_seconds for r in rounds), 2
        ),
        "server_cpu_seconds_per_round": round(
            statistics.median(sum(r.cpu_seconds.values()) for r in rounds), 2
        ),
        "server_received_mb_per_round": round(
            statistics.median(r.received_bytes for r in rounds) / 1e6, 1
        ),
    }


def run_flower_rounds(
    parties: int, params: dict[str, Any], rounds: int, timeout: float
) -> list[FlowerRound]:
    """``rounds`` measured FedAvg rounds (after one start-up round) of the Flower app with
    ``params`` (its run config) over ``parties`` SuperNodes."""
    python = ensure_flower_environment()
    binaries = python.parent
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        base = find_free_base_port(1 + parties, start=28000)
        link = base  # the SuperLink serves its Fleet, Control and Runtime APIs on one port
        (home / "config.toml").write_text(
            '[superlink]\ndefault = "bench"\n\n'
            f'[superlink.bench]\naddress = "127.0.0.1:{link}"\ninsecure = true\n'
        )
        out = home / "rounds.jsonl"
        environment = {
            **os.environ,
            "FLWR_HOME": str(home),
            # the SuperLink and SuperNodes start Flower's other executables by name
            "PATH": f"{binaries}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": f"{ROOT}{os.pathsep}{BENCH}",
            "LEARNCHAIN_FLOWER_OUT": str(out),
            "LEARNCHAIN_FLOWER_NODES": str(parties),
            "LEARNCHAIN_FLOWER_SUPERLINK_PID_FILE": str(home / "superlink.pid"),
            "OMP_NUM_THREADS": "1",
        }
        logs = [(home / f"{name}.log").open("w") for name in ("superlink", "run")]
        processes: list[subprocess.Popen[bytes]] = []
        try:
            superlink = subprocess.Popen(
                [
                    str(binaries / "flower-superlink"),
                    "--insecure",
                    "--disable-runtime-dependency-installation",
                    *("--host", "127.0.0.1"),
                    *("--port", str(link)),
                    *("--database", str(home / "state.db")),
                ],
                env=environment,
                stdout=logs[0],
                stderr=subprocess.STDOUT,
            )
            processes.append(superlink)
            (home / "superlink.pid").write_text(str(superlink.pid))
            for party in range(parties):
                log = (home / f"supernode{party}.log").open("w")
                logs.append(log)
                processes.append(
                    subprocess.Popen(
                        [
                            str(binaries / "flower-supernode"),
                            "--insecure",
                            *("--superlink", f"127.0.0.1:{link}"),
                            *("--port", str(base + 1 + party)),
                            "--node-config",
                            f"partition-id={party} num-partitions={parties}",
                        ],
                        env=environment,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            config = {**params, "num-server-rounds": rounds + 1}
            run_config = " ".join(f"{k}={json.dumps(v)}" for k, v in config.items())
            deadline = time.monotonic() + timeout
            while True:
                # the SuperLink's Control API takes a run once it listens
                submitted = subprocess.run(
                    [str(binaries / "flwr"), "run", str(APP), "bench", "--run-config", run_config],
                    env=environment,
                    stdout=logs[1],
                    stderr=subprocess.STDOUT,
                    check=False,
                )
                if submitted.returncode == 0:
                    break
                check_running(processes)
                if time.monotonic() > deadline:
                    raise TimeoutError("Flower's SuperLink took no run")
                time.sleep(1)
            lines = wait_for_rounds(out, processes, deadline)
        except BaseException:
            for log in logs:
                log.flush()
            tail = (home / "superlink.log").read_text()[-3000:]
            print(f"Flower's SuperLink log ends:\n{tail}", flush=True)
            raise
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
            for log in logs:
                log.close()
    return [compute_round(line) for line in lines[1:]]


def wait_for_rounds(
    out: Path, processes: list[subprocess.Popen[bytes]], deadline: float
) -> list[dict[str, Any]]:
    """The ServerApp's round lines, once it writes that it is done."""
    while True:
        check_running(processes)
        lines = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
        if lines and lines[-1].get("done"):
            if "error" in lines[-1]:
                raise RuntimeError(f"Flower's ServerApp failed: {lines[-1]['error']}")
            return lines[:-1]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(lines)} Flower rounds before the deadline")
        time.sleep(2)


def check_running(processes: list[subprocess.Popen[bytes]]) -> None:
    """Raise if a Flower process has ended."""
    for process in processes:
        if process.poll() is not None:
            ended = f"{process.args!r}: {process.returncode}"
            raise RuntimeError(f"a Flower process ended ({ended})")
