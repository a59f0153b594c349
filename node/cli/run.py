"""``learnchain start`` and ``learnchain query``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import click
import grpc

from learnchain.consensus.crypto import compute_address
from learnchain.consensus.params import SCORE_UNIT
from learnchain.consensus.types import ADDRESS_LENGTH, HASH_LENGTH
from learnchain.node.cli.options import echo_json, home_option, output_option, parse_hex
from learnchain.node.home.files import (
    CONFIG_FILE,
    GENESIS_FILE,
    ConfigError,
    compute_genesis_digest,
    format_time_ms,
    read_config,
    read_genesis,
    read_key,
)
from learnchain.node.home.tls import TlsError, TlsFiles, read_tls_files
from learnchain.node.store.store_error import StoreError
from learnchain.proto import learnchain_pb2 as pb
from learnchain.proto import learnchain_pb2_grpc as pb_grpc
from learnchain.proto.wire import get_reputation


@click.command()
@home_option
def start(home: Path) -> None:
    """Run a validator (or full node) from its home directory until Ctrl-C."""
    from learnchain.node.daemon import NodeFailure, run_node
    from learnchain.node.libs.harness import end_with_harness

    end_with_harness()
    try:
        asyncio.run(run_node(home))
    except (ConfigError, StoreError, NodeFailure) as error:
        raise click.ClickException(str(error)) from error
    except KeyboardInterrupt:
        pass


_TLS: dict[str, TlsFiles] = {}  # node address -> the certificate to present to it


def resolve_node(node: str | None, home: Path, wait: float = 0) -> str:
    """--node HOST:PORT, or else the listen address of the node at --home. When the home's node
    serves mutual TLS, calls to the address present that node's certificate. A node found
    through a home must answer for the home's chain (and be the home's own node, when the
    address is the home's): another process on that port is a one-line error."""
    has_config = (home / CONFIG_FILE).exists()
    if node is None and not has_config:
        raise click.UsageError(
            f"no node to ask: give --node HOST:PORT, or --home DIR of a node (none at {home})"
        )
    if not has_config:
        return str(node)
    try:
        config = read_config(home)
        address = node or config.listen
        if config.tls:
            _TLS[address] = read_tls_files(home)
        chain_id = read_genesis(home).genesis.chain_id if (home / GENESIS_FILE).exists() else None
        own_id = read_key(home).address.hex() if node is None else None
    except (ConfigError, TlsError) as error:
        raise click.ClickException(str(error)) from error
    check_node_identity(address, home, chain_id, own_id, wait)
    return address


def check_node_identity(
    address: str, home: Path, chain_id: str | None, node_id: str | None, wait: float = 0
) -> None:
    """One-line error unless the node at ``address`` answers for ``chain_id`` (and is
    ``node_id``, when given): a home must never be answered by another chain's node. A node
    that does not answer yet is asked again for up to ``wait`` seconds (one just started)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with open_channel(address) as channel:
                status = pb_grpc.QueryStub(channel).Status(pb.StatusRequest(), timeout=10)
            break
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise click.ClickException(f"{address}: {error.details()}") from None
            if time.monotonic() >= deadline:
                hint = f"is it running? learnchain start --home {home}" if node_id else "is it up?"
                raise click.ClickException(f"cannot reach a node at {address} ({hint})") from None
            time.sleep(0.5)
    if chain_id is not None and status.chain_id != chain_id:
        raise click.ClickException(
            f"the node at {address} is on chain {status.chain_id!r}, not {chain_id!r} of "
            f"{home}: another node holds that port (start this one, or give --node HOST:PORT)"
        )
    if node_id is not None and status.node_id != node_id:
        raise click.ClickException(
            f"the node at {address} is {status.node_id}, not {home}'s own node {node_id}: "
            "another node of this chain holds that port"
        )


def open_channel(address: str) -> grpc.Channel:
    """A channel to a node: mutual TLS when ``resolve_node`` found it serves that."""
    files = _TLS.get(address)
    return grpc.insecure_channel(address) if files is None else files.open_channel(address)


node_option = click.option(
    "--node", help="HOST:PORT of a node's gRPC service (default: the node at --home)."
)


def node_options(fn: Any) -> Any:
    """--node, --home and --output."""
    return node_option(home_option(output_option(fn)))


def call(address: str, method: str, request: Any) -> Any:
    """One Query call; gRPC failures become one-line errors."""
    with open_channel(address) as channel:
        stub = pb_grpc.QueryStub(channel)
        try:
            return getattr(stub, method)(request, timeout=10)
        except grpc.RpcError as error:
            code = error.code()
            if code == grpc.StatusCode.UNAVAILABLE:
                raise click.ClickException(f"cannot reach a node at {address}") from None
            raise click.ClickException(f"{address}: {error.details()}") from None


def emit(output: str, payload: dict[str, Any]) -> None:
    """JSON (one object) or aligned text."""
    if output == "json":
        echo_json(payload)
        return
    width = max([20, *(len(key) for key in payload)])
    for key, value in payload.items():
        click.echo(f"{key:<{width}} {format_text(value)}")


def format_text(value: Any) -> str:
    """A value as text output shows it: ``-`` for nothing, lists joined by commas, yes/no."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(format_text(v) for v in value) if value else "-"
    if isinstance(value, dict):
        return ", ".join(f"{k} {format_text(v)}" for k, v in value.items()) or "-"
    return str(value)


def resolve_address(text: str, home: Path, name: str = "ADDRESS") -> bytes:
    """An address given as 40 hex characters, or as the name of a key of ``home`` (its keyring,
    or ``validator``: the node's own key)."""
    from learnchain.node.home.keyring import get_key, is_valid_key_name

    if len(text) == 2 * ADDRESS_LENGTH:
        return parse_hex(text, name, ADDRESS_LENGTH, "a hex address")
    if is_valid_key_name(text):
        try:
            return get_key(home, text).address
        except ConfigError:
            pass
    raise click.BadParameter(
        f"{text!r} is neither an address (40 hex characters) nor a key of {home} "
        "(`learnchain keys list` shows them)",
        param_hint=name,
    )


@click.group()
def query() -> None:
    """Ask a node about the chain."""


@query.command()
@node_options
def status(node: str | None, home: Path, output: str) -> None:
    """Height, latest block, model hash, peers, and training: on or ended (and why)."""
    r = call(resolve_node(node, home), "Status", pb.StatusRequest())
    emit(
        output,
        {
            "chain_id": r.chain_id,
            "node_id": r.node_id,
            "moniker": r.moniker,
            "height": r.height,
            "latest_block_hash": r.latest_block_hash.hex(),
            "model_hash": r.model_hash.hex(),
            "peers": r.peers,
            "syncing": r.syncing,
            "round": r.round,
            "step": ["propose", "prevote", "precommit"][r.step],
            **describe_learning(r.learning),
            # scores are accuracy, or minus the loss: say which, and this node's view of both
            "metric": r.metric or None,
            **describe_own_evaluation(r),
            "upgrade": (
                f"{r.upgrade_plan.name} at height {r.upgrade_plan.height}"
                if r.HasField("upgrade_plan")
                else None
            ),
        },
    )


def describe_own_evaluation(r: pb.StatusResponse) -> dict[str, Any]:
    """This node's accuracy and loss of the current model on its own vote set (a validator
    that judged it), whatever the chain's metric."""
    if not r.HasField("own_evaluation"):
        return {"own_accuracy": None, "own_loss": None}
    own = r.own_evaluation
    return {"own_accuracy": round(own.accuracy, 4), "own_loss": round(own.loss, 4)}


def _micro(message: pb.LearningRecord, name: str) -> float | None:
    return getattr(message, name) / SCORE_UNIT if message.HasField(name) else None


def describe_learning(record: pb.LearningRecord) -> dict[str, Any]:
    """Training as the chain records it: on, or ended (why and where); the scores."""
    ends = {1: "budget", 2: "target", 3: "plateau"}
    return {
        "training": "on" if record.end == 0 else f"ended ({ends.get(record.end, '?')})",
        "training_ended_at": record.end_height - 1 if record.end else None,
        "model_height": record.model_height,
        "model_score": _micro(record, "model_score"),
        "best_score": _micro(record, "best_score"),
        "updates_without_improvement": record.stale_rounds,
    }


def block_payload(item: pb.BlockWithCommit) -> dict[str, Any]:
    """The JSON form of a block."""
    from learnchain.proto.wire import block_from_proto

    block = block_from_proto(item.block)
    h = block.header
    return {
        "height": h.height,
        "time": format_time_ms(h.time_ms),
        "hash": block.hash.hex(),
        "prev_hash": h.prev_hash.hex(),
        "proposer": h.proposer.hex(),
        "model_hash": h.model_hash.hex(),
        "state_root": h.state_root.hex(),
        "txs": [t.hash().hex() for t in block.txs],
        "evidence": len(block.evidence),
        "contributions": [c.validator.hex() for c in block.contributions],
        # proposals of this height the vote rejected, whose proposers forfeit a deposit (§3.6)
        "rejected_proposals": [
            {
                "round": r.proposal.round,
                "block_hash": r.proposal.block_hash.hex(),
                "rejected_by": [v.vote.validator.hex() for v in r.prevotes],
            }
            for r in block.rejections
        ],
        "commit_round": item.commit.round,
        "signers": [s.validator.hex() for s in item.commit.signatures],
    }


@query.command(context_settings={"ignore_unknown_options": True})
@click.argument("height", type=click.IntRange(1), required=False)
@click.option(
    "--wait",
    is_flag=True,
    help="Wait for the node to answer and to commit HEIGHT (up to --timeout), for scripts.",
)
@click.option("--timeout", type=click.FloatRange(0), default=300, show_default=True)
@node_options
def block(
    height: int | None, wait: bool, timeout: float, node: str | None, home: Path, output: str
) -> None:
    """The block at HEIGHT (1 is the first; the latest when left out)."""
    deadline = time.monotonic() + timeout
    address = resolve_node(node, home, timeout if wait else 0)
    if wait and height is not None:
        while call(address, "Status", pb.StatusRequest()).height < height:
            if time.monotonic() >= deadline:
                raise click.ClickException(f"height {height} not committed within {timeout:g} s")
            time.sleep(0.5)
    request = pb.BlockRequest(height=height or 0)  # 0 asks for the latest
    emit(output, block_payload(call(address, "GetBlock", request)))


@query.command("upgrade")
@node_options
def upgrade(node: str | None, home: Path, output: str) -> None:
    """The scheduled upgrade plan, the validators' pending signals (with their share of the
    power), and the upgrades the node's build carries."""
    address = resolve_node(node, home)
    status = call(address, "Status", pb.StatusRequest())
    validators = call(address, "Validators", pb.ValidatorsRequest()).validators.validators
    power = {v.address.hex(): v.power for v in validators}
    total = sum(power.values()) or 1
    signals = [
        {
            "address": s.address.hex(),
            "name": s.plan.name,
            "height": s.plan.height,
            "share": round(power.get(s.address.hex(), 0) / total, 4),
        }
        for s in status.upgrade_signals
    ]
    plan = status.upgrade_plan if status.HasField("upgrade_plan") else None
    emit(
        output,
        {
            "height": status.height,
            "plan": None if plan is None else {"name": plan.name, "height": plan.height},
            "signals": signals,
            "node_carries": list(status.known_upgrades),
        },
    )


@query.command("genesis-hash")
@node_options
def genesis_hash(node: str | None, home: Path, output: str) -> None:
    """SHA-256 of the node's genesis.json: compare it with ``sha256sum genesis.json``."""
    genesis_json = call(resolve_node(node, home), "Genesis", pb.GenesisRequest()).genesis_json
    emit(output, {"genesis_hash": compute_genesis_digest(genesis_json)})


@query.command()
@node_options
def validators(node: str | None, home: Path, output: str) -> None:
    """The validator set for the next height."""
    r = call(resolve_node(node, home), "Validators", pb.ValidatorsRequest())
    members = [
        {
            "address": v.address.hex(),
            "moniker": r.monikers.get(v.address.hex(), ""),
            "stake": v.power,
            "endpoint": v.endpoint,
            "priority": v.priority,
            # micro-units of loss (docs/protocol.md §3.9); None when the chain keeps none
            "reputation": get_reputation(r, v.address),
        }
        for v in r.validators.validators
    ]
    if output == "json":
        echo_json({"height": r.height, "validators": members})
        return
    click.echo(f"validators for height {r.height}:")
    width = max((len(m["moniker"]) for m in members), default=0) or 1
    for m in members:
        shown = m["reputation"]
        reputation = "" if shown is None else f"  reputation {shown / SCORE_UNIT:+.4f}"
        click.echo(
            f"  {m['moniker'] or '-':<{width}}  {m['address']}  stake {m['stake']:>8}  "
            f"{m['endpoint']}{reputation}"
        )


@query.command()
@click.argument("address")
@node_options
def account(address: str, node: str | None, home: Path, output: str) -> None:
    """Balance, nonce, bond and unbonding tokens of ADDRESS (40 hex characters, or the name of
    a key of the home: `learnchain keys list`)."""
    raw = resolve_address(address, home)
    r = call(resolve_node(node, home), "GetAccount", pb.AccountRequest(address=raw))
    payload: dict[str, Any] = {
        "address": raw.hex(),
        "balance": r.account.balance,
        "nonce": r.account.nonce,
        "bonded": r.bond.bonded if r.HasField("bond") else 0,
        "unbonding": sum(u.amount for u in r.unbonding),
    }
    if r.unbonding:
        payload["unbonding_returns"] = [
            {"amount": u.amount, "at_height": u.release_height} for u in r.unbonding
        ]
    if r.HasField("bond"):
        payload |= {"jailed": r.bond.jailed, "endpoint": r.bond.endpoint}
    if output == "json":
        echo_json(payload)
        return
    returns = payload.pop("unbonding_returns", [])
    emit(output, payload)
    for entry in returns:
        click.echo(f"  {entry['amount']} return at height {entry['at_height']}")


@query.command()
@click.argument("tx_hash", metavar="HASH")
@node_options
def tx(tx_hash: str, node: str | None, home: Path, output: str) -> None:
    """A committed transaction by HASH (64 hex characters, as `tx` commands print it): the
    block and place that committed it, and what it did."""
    from learnchain.proto.wire import tx_from_proto

    raw = parse_hex(tx_hash, "HASH", HASH_LENGTH)
    r = call(resolve_node(node, home), "GetTx", pb.TxRequest(hash=raw))
    signed = tx_from_proto(r.tx)
    t = signed.tx
    payload: dict[str, Any] = {
        "hash": tx_hash,
        "height": r.height,
        "index": r.index,
        "block_hash": r.block_hash.hex(),
        "kind": t.kind.name.lower(),
        "sender": compute_address(t.sender).hex(),
        "nonce": t.nonce,
    }
    if t.amount:
        payload["amount"] = t.amount
    if t.recipient:
        payload["recipient"] = t.recipient.hex()
    if t.endpoint:
        payload["endpoint"] = t.endpoint
    emit(output, payload)


@query.command()
@node_options
def model(node: str | None, home: Path, output: str) -> None:
    """The current global model's hash and size."""
    address = resolve_node(node, home)
    s = call(address, "Status", pb.StatusRequest())
    size = 0
    with open_channel(address) as channel:
        for chunk in pb_grpc.QueryStub(channel).Model(pb.FetchWeightsRequest(), timeout=60):
            size += len(chunk.data)
    emit(output, {"height": s.height, "model_hash": s.model_hash.hex(), "size_bytes": size})


@query.command()
@click.option("--from-height", type=click.IntRange(1), default=1, show_default=True)
@click.option("--limit", type=click.IntRange(1, 10000), default=100, show_default=True)
@node_options
def history(from_height: int, limit: int, node: str | None, home: Path, output: str) -> None:
    """Blocks and the model updates they carried: the round each was committed in (rounds
    before it failed), the contributions used, and the validators' recorded score."""
    r = call(
        resolve_node(node, home), "History", pb.HistoryRequest(from_height=from_height, limit=limit)
    )
    entries = [
        {
            "height": e.height,
            "block_hash": e.block_hash.hex(),
            "proposer": e.proposer.hex(),
            "model_hash": e.model_hash.hex(),
            "model_updated": e.model_updated,
            "txs": e.txs,
            "round": e.round,
            "contributors": [c.hex() for c in e.contributors],
            "score": e.score / SCORE_UNIT if e.HasField("score") else None,
        }
        for e in r.entries
    ]
    if output == "json":
        echo_json({"entries": entries})
        return
    click.echo(f"{'height':>6}  {'block':<16}  {'proposer':<12}  round  update  contrib  score")
    for e in entries:
        score = "" if e["score"] is None else f"{e['score']:.4f}"
        click.echo(
            f"{e['height']:>6}  {e['block_hash'][:16]}  {e['proposer'][:12]}  {e['round']:>5}  "
            f"{'yes' if e['model_updated'] else '-':>6}  {len(e['contributors']):>7}  {score}"
        )


@query.command()
@node_options
def health(node: str | None, home: Path, output: str) -> None:
    """The node's gRPC health (exit status 0 when SERVING): for container health checks."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    address = resolve_node(node, home)
    with open_channel(address) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=3
            )
        except grpc.RpcError as error:
            raise click.ClickException(f"{address}: {error.code().name}") from None
    serving = answer.status == health_pb2.HealthCheckResponse.SERVING
    emit(
        output,
        {
            "address": address,
            "status": health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status),
        },
    )
    if not serving:
        raise SystemExit(1)


@click.command("unsafe-reset-all")
@home_option
def unsafe_reset_all(home: Path) -> None:
    """Delete the node's stored chain and weights so that it syncs again from its peers (for a
    damaged database). Keeps the config, the keys and, when readable, the double-sign guard."""
    from learnchain.node.store.store_reset import reset_chain

    try:
        read_config(home)
    except ConfigError as error:
        raise click.ClickException(str(error)) from error
    existed, sign_state = reset_chain(home)
    if not existed:
        click.echo(f"{home}: no stored chain; nothing to reset")
        return
    kept = (
        f"kept the double-sign guard (last signed height {sign_state.height})"
        if sign_state is not None
        else "no double-sign guard could be read: start this validator only once the chain is "
        "past the last height it signed"
    )
    click.echo(f"{home}: removed the stored chain; {kept}; the next start syncs from the peers")
