"""``learnchain demo``: a local testnet of real node processes that learns, shown live."""

from __future__ import annotations

import functools
import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import click
import grpc

from learnchain.consensus.params import SCORE_UNIT
from learnchain.consensus.types import Threshold
from learnchain.node.cli.dashboard import check_listen, serve_dashboard
from learnchain.node.cli.demo_data import DemoData, prepare_digits, prepare_files
from learnchain.node.cli.options import echo_json, output_option, parse_threshold
from learnchain.node.cli.run import describe_learning
from learnchain.node.localnet.cluster import ClusterError, LocalCluster
from learnchain.node.rpc.dashboard import Baselines
from learnchain.proto import learnchain_pb2 as pb
from learnchain.proto.wire import get_reputation

ATTACK_KINDS = ("label_flip", "random", "nan", "scaled", "approve_all", "copycat", "lazy")


@dataclass
class Progress:
    """What the demo has seen so far."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    accuracy: float = 0.0
    commit_times: list[float] = field(default_factory=list)
    ended: dict[str, Any] = field(default_factory=dict)  # why training ended, once it did


def _evaluate(task: Any, data: bytes, test: Any) -> float:
    from safetensors.torch import load

    from learnchain.ml.training import evaluate_state

    return evaluate_state(task, load(data), test).accuracy


def score_model(net: LocalCluster, model_hash: bytes, task: Any, test: Any) -> float | None:
    """The held-out accuracy of a committed model, or None when node 0 no longer holds it (it
    keeps ``retain_models`` models, and the chain may have run far ahead of the demo)."""
    try:
        data = net[0].fetch_model(model_hash)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise
    return _evaluate(task, data, test)


def keep_reported_models(net: LocalCluster, rounds: int) -> None:
    """Have node 0 keep every model the demo may still score (one per height at most)."""
    net[0].configure("retain_models", str(rounds + 1))


def _follow(
    net: LocalCluster,
    rounds: int,
    previous_model: bytes,
    task: Any,
    test: Any,
    monikers: dict[bytes, str],
    byzantine_addresses: set[bytes],
    progress: Progress,
    say: Any,
    as_loss: bool = False,
) -> None:
    """Show each committed height of node 0, scoring each update, until training has ended by
    the chain's rule (and every block up to that is shown) or ``rounds`` heights."""
    seen = 0
    last_progress = time.monotonic()
    while seen < rounds:
        net.check_alive()
        if time.monotonic() - last_progress > 120:
            raise ClusterError("no block committed for 120 s")
        status = net[0].status()
        if status is None:
            time.sleep(0.05)
            continue
        height = status.height
        if status.learning.end and seen >= status.learning.end_height:
            progress.ended = describe_learning(status.learning)
            return
        if height <= seen:
            time.sleep(0.05)
            continue
        for h in range(seen + 1, min(height, rounds) + 1):
            try:
                item = net[0].block_with_commit(h)
            except grpc.RpcError:
                height = h - 1
                break
            header = item.block.header
            updated = header.model_hash != previous_model
            scored = score_model(net, header.model_hash, task, test) if updated else None
            if scored is not None:
                progress.accuracy = scored
            previous_model = header.model_hash
            score = _get_recorded_score(net, h - 1) if h > 1 else None
            row = {
                "height": h,
                "proposer": monikers.get(header.proposer, header.proposer.hex()[:12]),
                "byzantine_proposer": header.proposer in byzantine_addresses,
                "honest_contributions": sum(
                    c.validator not in byzantine_addresses for c in item.block.contributions
                ),
                "round": item.commit.round,
                "accepted": updated,
                "accuracy": round(progress.accuracy, 4),
                "signers": len(item.commit.signatures),
                "score_of_previous": score,
            }
            progress.rows.append(row)
            progress.commit_times.append(time.monotonic())
            shown = "" if score is None else f"{-score:.4f}" if as_loss else f"{score:.3f}"
            say(
                f"{h:>6} {row['proposer']:<22} {row['round']:>5} "
                f"{'yes' if updated else '-':>7} {progress.accuracy:>8.3f} {shown:>11}"
            )
        seen = min(height, rounds)
        last_progress = time.monotonic()


def _get_recorded_score(net: LocalCluster, height: int) -> float | None:
    """The validators' recorded (median) score of the update at ``height``, once recorded."""
    history = net[0].query.History(pb.HistoryRequest(from_height=height, limit=1), timeout=10)
    entry = history.entries[0] if history.entries else None
    return entry.score / SCORE_UNIT if entry is not None and entry.HasField("score") else None


def draw_demo_plot(
    path: Path,
    progress: Progress,
    local: list[float],
    pooled: float,
    validators: int,
    byzantine: int,
) -> None:
    """The demo's accuracy per height, with each party alone and pooled."""
    from learnchain.ml.plots import AccuracyCurves, draw_accuracy

    rows = progress.rows
    curves = AccuracyCurves(
        chain=[r["accuracy"] for r in rows],
        alone=local,
        pooled=pooled,
        rejected=[r["height"] for r in rows if r["round"] > 0],
        title=f"learnchain demo: {validators} validators, {byzantine} byzantine",
    )
    try:
        draw_accuracy(curves, path)
    except OSError as error:
        raise click.ClickException(f"cannot write {path}: {error.strerror}") from None


def _baselines(task: Any, data: DemoData, seed: int, byzantine: int) -> tuple[list[float], float]:
    """Each honest party alone, and everyone's training data pooled (same held-out test set)."""
    from learnchain.ml.baselines import compute_local_only_accuracies, compute_pooled_accuracy

    honest = data.parties[: len(data.parties) - byzantine]
    local = compute_local_only_accuracies(task, honest, data.test, seed)
    return [round(a, 4) for a in local], round(
        compute_pooled_accuracy(task, data.parties, data.test, seed), 4
    )


def _get_reputations(query: Any, monikers: dict[bytes, str]) -> dict[str, float] | None:
    """Each validator's reputation by moniker (in units of loss), or None when the chain keeps
    none."""
    reply = query.Validators(pb.ValidatorsRequest(), timeout=10)
    if not reply.keeps_reputation:
        return None
    return {
        monikers.get(v.address, v.address.hex()): (get_reputation(reply, v.address) or 0)
        / SCORE_UNIT
        for v in reply.validators.validators
    }


def _get_contributor_income(
    query: Any, monikers: dict[bytes, str], progress: Progress, genesis: dict[str, Any]
) -> dict[str, int]:
    """Each validator's balance gained since the genesis less its proposer shares of the
    accepted updates (aggregate mode: ``block_reward`` less the contributors' part), by
    moniker."""
    params = genesis["params"]
    reward = int(params["block_reward"])
    proposer_share = reward - reward * (100 - int(params["proposer_reward_percent"])) // 100
    initial = {bytes.fromhex(a["address"]): int(a["balance"]) for a in genesis["accounts"]}
    income = {}
    for address, name in monikers.items():
        reply = query.GetAccount(pb.AccountRequest(address=address), timeout=10)
        proposed = sum(r["accepted"] and r["proposer"] == name for r in progress.rows)
        paid = int(reply.account.balance) - initial.get(address, 0)
        income[name] = paid - proposer_share * proposed
    return income


@click.command()
@click.option("--validators", type=click.IntRange(1, 20), default=5, show_default=True)
@click.option(
    "--rounds",
    type=click.IntRange(1),
    default=300,
    show_default=True,
    help="At most this many heights (training ends sooner by the chain's plateau rule).",
)
@click.option("--partition", default="dirichlet:0.5", show_default=True)
@click.option(
    "--data-files",
    default="",
    metavar="F0,F1,...",
    help="One CSV, NPZ or Parquet file per validator (classification) instead of digits: a "
    "fifth of each is held out as the shared test set, the rest is that validator's data.",
)
@click.option("--label-column", default="label", show_default=True, help="The files' label column.")
@click.option("--byzantine", type=click.IntRange(0), default=0, show_default=True)
@click.option("--attack", type=click.Choice(ATTACK_KINDS), default="label_flip", show_default=True)
@click.option(
    "--mode", type=click.Choice(["aggregate", "solo"]), default="aggregate", show_default=True
)
@click.option("--threshold", default="2/3", callback=parse_threshold, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--reputation-decay",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Keep contributors' reputations on chain (testnet --reputation-decay; 0: none).",
)
@click.option(
    "--task-param",
    "task_params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A genesis task setting (testnet --task-param), e.g. appraisal=first_order.",
)
@output_option
@click.option(
    "--plot",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Draw the accuracy per round (the chain, each party alone, pooled) to FILE.png.",
)
@click.option(
    "--dashboard",
    "dashboard_listen",
    default=None,
    metavar="HOST:PORT",
    callback=lambda ctx, param, value: None if value is None else check_listen(ctx, param, value),
    help="Serve the live dashboard of node 0 here (e.g. 127.0.0.1:26670); the baselines "
    "(each party alone, pooled) are trained first so that it shows them from the start.",
)
@click.option(
    "--keep",
    type=click.Path(path_type=Path),
    default=None,
    help="Keep the testnet in this directory.",
)
def demo(
    validators: int,
    rounds: int,
    partition: str,
    data_files: str,
    label_column: str,
    byzantine: int,
    attack: str,
    mode: str,
    threshold: Threshold,
    seed: int,
    reputation_decay: float,
    task_params: tuple[str, ...],
    output: str,
    plot: Path | None,
    dashboard_listen: str | None,
    keep: Path | None,
) -> None:
    """Run N real validators on loopback that train one model on sharded digits (or on your
    own files), live."""
    from learnchain.ml.errors import MLError
    from learnchain.ml.tasks import get_task
    from learnchain.node.home.files import read_genesis

    files = [Path(f) for f in data_files.split(",") if f]
    if files and len(files) != validators:
        raise click.BadParameter(
            f"{len(files)} files for {validators} validators: give one each",
            param_hint="--data-files",
        )
    if byzantine >= validators:
        raise click.BadParameter("at least one validator must be honest", param_hint="--byzantine")
    if plot is not None and not plot.parent.is_dir():
        raise click.BadParameter(f"{plot.parent} does not exist", param_hint="--plot")
    # With --output json, stdout holds only the summary; the progress goes to stderr.
    say = click.echo if output == "text" else functools.partial(click.echo, err=True)
    scratch = None
    if keep is None:
        scratch = tempfile.TemporaryDirectory(prefix="learnchain-demo-")
        root = Path(scratch.name) / "testnet"
    else:
        root = keep
    try:
        data = (
            prepare_files(files, label_column, root.with_name(root.name + "-data"), seed)
            if files
            else prepare_digits(validators, partition, seed)
        )
    except MLError as error:
        raise click.ClickException(str(error)) from None
    try:
        net = LocalCluster(
            root,
            validators,
            *("--chain-id", "learnchain-demo", "--threshold", str(threshold)),
            *("--mode", mode, *data.testnet_args),
            *("--reputation-decay", str(reputation_decay)),
            *(arg for param in task_params for arg in ("--task-param", param)),
            own_sessions=True,
        )
        net.configure_all("attack", attack, range(validators - byzantine, validators))
        keep_reported_models(net, rounds)
    except (ClusterError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    monikers = {}
    for i in range(validators):
        key = json.loads((net[i].home / "node_key.json").read_text())
        monikers[bytes.fromhex(key["address"])] = f"node{i}" + (
            f" ({attack})" if i >= validators - byzantine else ""
        )
    task_config = read_genesis(net[0].home).task
    task = get_task(task_config)
    test = data.test
    byzantine_addresses = {a for a, m in monikers.items() if "(" in m}
    progress = Progress()
    baselines: tuple[list[float], float] | None = None
    if dashboard_listen is not None:
        say("training the comparison baselines (each party alone, and all data pooled)...")
        baselines = _baselines(task, data, seed, byzantine)
    say(
        f"starting {validators} validators ({mode}, threshold {threshold}, {data.description}, "
        f"{byzantine} byzantine) in {root}"
    )
    started = time.monotonic()
    try:
        with net:
            net.start_all()
            net.wait_for(range(validators), 0, timeout=180)
            if dashboard_listen is not None and baselines is not None:
                serve_dashboard(net[0].address, dashboard_listen, Baselines(*baselines))
                say(f"the live dashboard is at http://{dashboard_listen}/")
            as_loss = task_config.metric.value == "loss"  # scores are then minus the loss
            recorded = "prev loss" if as_loss else "prev score"
            say(
                f"{'height':>6} {'proposer':<22} {'round':>5} {'update':>7} {'test acc':>8} "
                f"{recorded:>11}"
            )
            genesis = json.loads((net[0].home / "genesis.json").read_text())
            _follow(
                net,
                rounds,
                bytes.fromhex(genesis["initial_model_hash"]),
                task,
                test,
                monikers,
                byzantine_addresses,
                progress,
                say,
                as_loss,
            )
            top = min(net[i].height() for i in range(validators))
            consistent = all(
                len({net[i].block_hash(h) for i in range(validators)}) == 1
                for h in range(1, min(top, rounds) + 1)
            )
            reputations = _get_reputations(net[0].query, monikers)
            income = _get_contributor_income(net[0].query, monikers, progress, genesis)
    except KeyboardInterrupt:
        raise click.ClickException("interrupted; every validator was stopped") from None
    except ClusterError as error:
        if scratch is not None:
            scratch._finalizer.detach()  # type: ignore[attr-defined]  # keep the logs to read
        raise click.ClickException(f"{error}\n(the node logs are in {root})") from None
    except BaseException:
        if scratch is not None:
            scratch._finalizer.detach()  # type: ignore[attr-defined]  # keep the logs to read
        raise
    if scratch is not None:
        scratch.cleanup()
    if baselines is None:
        say("training the comparison baselines (each party alone, and all data pooled)...")
        baselines = _baselines(task, data, seed, byzantine)
    local, pooled = baselines
    intervals = [b - a for a, b in pairwise(progress.commit_times)]
    summary = {
        "rounds": len(progress.rows),
        "accepted": sum(r["accepted"] for r in progress.rows),
        "rejected": sum(r["round"] for r in progress.rows),
        "final_accuracy": round(progress.accuracy, 4),
        "local_only_accuracy": local,
        "pooled_accuracy": pooled,
        "byzantine_accepted": sum(r["accepted"] and r["byzantine_proposer"] for r in progress.rows),
        # a poisoner's update accepted without honest work in it (a verified aggregate holds some)
        "byzantine_accepted_without_honest": sum(
            r["accepted"] and r["byzantine_proposer"] and not r["honest_contributions"]
            for r in progress.rows
        ),
        "heights": len(progress.rows),
        "round_seconds_median": round(statistics.median(intervals), 4) if intervals else None,
        "consistent": consistent,
        "wall_seconds": round(time.monotonic() - started, 1),
        "training": progress.ended.get("training", "on"),
        "training_ended_at": progress.ended.get("training_ended_at"),
        "best_score": progress.ended.get("best_score"),
        # each validator's reputation on chain at the end (§3.9), when the chain keeps them
        "reputations": reputations,
        # each validator's tokens earned as a contributor (§3.5): its balance less what it was
        # paid for proposing the updates the chain accepted
        "contributor_income": income,
    }
    if plot is not None:
        draw_demo_plot(plot, progress, local, pooled, validators, byzantine)
        summary["plot"] = str(plot)
    if output == "json":
        echo_json(summary)
        return
    say("")
    say(
        f"committed {summary['heights']} heights in {summary['wall_seconds']} s: "
        f"{summary['accepted']} model updates accepted, {summary['rejected']} proposals rejected"
    )
    say(f"  final accuracy (held-out test)  {summary['final_accuracy']:.3f}")
    say(f"  each party alone                {', '.join(f'{a:.3f}' for a in local)}")
    say(f"  all data pooled                 {pooled:.3f}")
    say(
        f"  byzantine updates accepted      {summary['byzantine_accepted']}"
        f" (without honest contributions: {summary['byzantine_accepted_without_honest']})"
    )
    say(f"  every node agrees on every block: {'yes' if consistent else 'NO'}")
    if plot is not None:
        say(f"  accuracy per round drawn in     {plot}")
    if progress.ended:
        best = progress.ended["best_score"]
        ended = f"  training {summary['training']} at height {summary['training_ended_at']}"
        if best is None:
            say(ended)
        elif task_config.metric.value == "loss":
            say(f"{ended} (best recorded validator loss {-best:.4f}); the chain now rests")
        else:
            say(f"{ended} (best recorded validator score {best:.3f}); the chain now rests")
    else:
        say(f"  training still on after {rounds} heights (--rounds)")
