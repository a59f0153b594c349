"""``learnchain tx ...`` and ``learnchain model export``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
import grpc

from learnchain.consensus.crypto import PrivateKey
from learnchain.consensus.messages import SignedTx, Tx, TxKind
from learnchain.consensus.types import (
    MAX_MONIKER_LENGTH,
    Address,
    ChainId,
    Height,
    Nonce,
    Signature,
    Tokens,
    is_valid_moniker,
)
from learnchain.node.cli.run import (
    call,
    emit,
    node_options,
    open_channel,
    resolve_address,
    resolve_node,
)
from learnchain.node.home.files import CONFIG_FILE, ConfigError, read_key_file
from learnchain.node.home.keyring import VALIDATOR_KEY_NAME, get_key, is_valid_key_name
from learnchain.proto import learnchain_pb2 as pb
from learnchain.proto import learnchain_pb2_grpc as pb_grpc
from learnchain.proto.wire import tx_to_proto


def _load_signer(home: Path, key_name: str) -> PrivateKey:
    """--from NAME (a key of ``home``'s keyring, or ``validator``: the node's own) or a key file."""
    try:
        if not is_valid_key_name(key_name) and Path(key_name).is_file():
            return read_key_file(Path(key_name))
        return get_key(home, key_name)
    except ConfigError as error:
        raise click.ClickException(str(error)) from error


def send_tx(
    address: str, key: PrivateKey, kind: TxKind, wait: bool, **fields: Any
) -> dict[str, Any]:
    """Sign with the next nonce, submit, and (with ``wait``) wait until a block includes it."""
    status = call(address, "Status", pb.StatusRequest())
    account = call(address, "GetAccount", pb.AccountRequest(address=key.address)).account
    tx = Tx(ChainId(status.chain_id), kind, key.public_key, Nonce(account.nonce), **fields)
    signed = SignedTx(tx, Signature(key.sign(tx.sign_bytes())))
    with open_channel(address) as channel:
        try:
            ack = pb_grpc.PeerStub(channel).SubmitTx(tx_to_proto(signed), timeout=10)
        except grpc.RpcError as error:
            raise click.ClickException(
                f"{address} refused the transaction: {error.details()}"
            ) from None
    result: dict[str, Any] = {
        "tx_hash": ack.tx_hash.hex(),
        "sender": key.address.hex(),
        "nonce": tx.nonce,
    }
    if wait:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            now = call(address, "GetAccount", pb.AccountRequest(address=key.address)).account
            if now.nonce > account.nonce:
                result["committed_by_height"] = call(address, "Status", pb.StatusRequest()).height
                break
            time.sleep(0.5)
        else:
            raise click.ClickException(
                "the transaction was not committed within 120 s (it may still be; "
                "check with `learnchain query account`)"
            )
    return result


def tx_options(fn: Any) -> Any:
    """--from and --wait."""
    fn = click.option(
        "--from",
        "key_name",
        required=True,
        metavar="KEY",
        help=f"Sign with this key: a name from `learnchain keys list` ({VALIDATOR_KEY_NAME!r} "
        "is the node's own key) or a key file.",
    )(fn)
    return click.option(
        "--wait/--no-wait", default=True, show_default=True, help="Wait until committed."
    )(fn)


# Negative amounts reach the argument's range check instead of being read as unknown options.
TX_SETTINGS = {"ignore_unknown_options": True}


@click.group()
def tx() -> None:
    """Sign and submit transactions."""


@tx.command(context_settings=TX_SETTINGS)
@click.argument("amount", type=click.IntRange(1))
@click.option(
    "--endpoint",
    default="",
    help="This validator's gRPC address for peers (default: from its config.toml).",
)
@click.option(
    "--moniker",
    default=None,
    help="The validator's name, shown by `query validators` (default: from its config.toml).",
)
@node_options
@tx_options
def stake(
    amount: int,
    endpoint: str,
    moniker: str | None,
    node: str | None,
    home: Path,
    output: str,
    key_name: str,
    wait: bool,
) -> None:
    """Bond AMOUNT tokens: become a validator, or add power."""
    if (not endpoint or moniker is None) and (home / CONFIG_FILE).exists():
        from learnchain.node.home.files import get_advertised_address, read_config

        try:
            config = read_config(home)
        except ConfigError as error:
            raise click.ClickException(str(error)) from error
        endpoint = endpoint or get_advertised_address(config)
        moniker = config.moniker if moniker is None else moniker
    moniker = moniker or ""
    if not is_valid_moniker(moniker):
        raise click.BadParameter(
            f"at most {MAX_MONIKER_LENGTH} printable characters", param_hint="--moniker"
        )
    key = _load_signer(home, key_name)
    address = resolve_node(node, home)
    result = send_tx(
        address,
        key,
        TxKind.STAKE,
        wait,
        amount=Tokens(amount),
        endpoint=endpoint,
        moniker=moniker,
    )
    emit(output, result | (wait_for_validator_set(address, key, result) if wait else {}))


def wait_for_validator_set(
    address: str, key: PrivateKey, result: dict[str, Any], timeout: float = 120
) -> dict[str, Any]:
    """After a committed stake or unstake at height H: wait until the set deciding the next
    height is the one it changed (H+2, a block later), and say where ``key`` stands in it."""
    effective = result["committed_by_height"] + 1
    deadline = time.monotonic() + timeout
    while call(address, "Status", pb.StatusRequest()).height < effective:
        if time.monotonic() >= deadline:
            raise click.ClickException(
                f"committed, but the chain has not reached height {effective}, where the "
                f"validator set changes, within {timeout:g} s"
            )
        time.sleep(0.5)
    members = call(address, "Validators", pb.ValidatorsRequest()).validators.validators
    power = next((v.power for v in members if v.address == key.address), 0)
    return {"validator_from_height": effective + 1 if power else None, "power": power}


@tx.command(context_settings=TX_SETTINGS)
@click.argument("amount", type=click.IntRange(1))
@node_options
@tx_options
def unstake(
    amount: int, node: str | None, home: Path, output: str, key_name: str, wait: bool
) -> None:
    """Start unbonding AMOUNT tokens (they return after the unbonding period)."""
    key = _load_signer(home, key_name)
    address = resolve_node(node, home)
    result = send_tx(address, key, TxKind.UNSTAKE, wait, amount=Tokens(amount))
    emit(output, result | (wait_for_validator_set(address, key, result) if wait else {}))


@tx.command(context_settings=TX_SETTINGS)
@click.argument("to")
@click.argument("amount", type=click.IntRange(1))
@node_options
@tx_options
def transfer(
    to: str,
    amount: int,
    node: str | None,
    home: Path,
    output: str,
    key_name: str,
    wait: bool,
) -> None:
    """Send AMOUNT tokens to TO: an address (40 hex characters), or the name of a key of the
    home (`learnchain keys list`)."""
    recipient = resolve_address(to, home, "TO")
    key = _load_signer(home, key_name)
    emit(
        output,
        send_tx(
            resolve_node(node, home),
            key,
            TxKind.TRANSFER,
            wait,
            amount=Tokens(amount),
            recipient=Address(recipient),
        ),
    )


@tx.command(context_settings=TX_SETTINGS)
@node_options
@tx_options
def unjail(node: str | None, home: Path, output: str, key_name: str, wait: bool) -> None:
    """Ask to be let back into the validator set after a jail term."""
    key = _load_signer(home, key_name)
    emit(output, send_tx(resolve_node(node, home), key, TxKind.UNJAIL, wait))


@tx.command(context_settings=TX_SETTINGS)
@click.argument("name")
@click.option(
    "--height",
    "upgrade_height",
    type=click.IntRange(1),
    required=True,
    help="The height at which the chain halts for the upgrade (after the latest block).",
)
@node_options
@tx_options
def upgrade(
    name: str,
    upgrade_height: int,
    node: str | None,
    home: Path,
    output: str,
    key_name: str,
    wait: bool,
) -> None:
    """Signal the upgrade plan NAME at --height: once validators holding more than the
    threshold of the stake signal the same plan, every node stops before that height unless its
    build carries NAME (the learnchain.upgrades entry points of this build: `query upgrade`)."""
    from learnchain.consensus.upgrades import UpgradePlan, is_valid_upgrade_name
    from learnchain.node.chain.upgrade_plugins import UpgradePluginError, load_installed_upgrades

    try:
        known = load_installed_upgrades()
    except UpgradePluginError as error:
        raise click.ClickException(str(error)) from None
    if not is_valid_upgrade_name(name):
        raise click.BadParameter(
            "lower-case letters, digits, '.', '_' and '-', at most 64", param_hint="NAME"
        )
    if name not in known:
        raise click.BadParameter(
            f"unknown upgrade {name!r}: this build carries {', '.join(known) or 'none'} "
            "(submit the plan with the build that carries it)",
            param_hint="NAME",
        )
    address = resolve_node(node, home)
    height = call(address, "Status", pb.StatusRequest()).height
    if upgrade_height <= height + 1:
        raise click.BadParameter(
            f"height {upgrade_height} is not after the next block ({height + 1})",
            param_hint="--height",
        )
    key = _load_signer(home, key_name)
    plan = UpgradePlan(name, Height(upgrade_height))
    emit(output, send_tx(address, key, TxKind.UPGRADE, wait, upgrade=plan))


@click.group()
def model() -> None:
    """The shared model."""


@model.command("export")
@click.option(
    "--output-file",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="FILE.safetensors to write.",
)
@click.option("--height", type=click.IntRange(1), default=None, help="The model as of this block.")
@node_options
def export(out: Path, height: int | None, node: str | None, home: Path, output: str) -> None:
    """Write the global model as safetensors, checking its hash against the chain."""
    if out.is_dir():
        raise click.BadParameter(
            f"{out} is a directory; give a file name", param_hint="--output-file"
        )
    if not out.parent.is_dir():
        raise click.BadParameter(f"{out.parent} does not exist", param_hint="--output-file")
    address = resolve_node(node, home)
    if height is None:
        status = call(address, "Status", pb.StatusRequest())
        model_hash, at = status.model_hash, status.height
    else:
        item = call(address, "GetBlock", pb.BlockRequest(height=height))
        model_hash, at = item.block.header.model_hash, height
    parts = []
    with open_channel(address) as channel:
        try:
            for chunk in pb_grpc.QueryStub(channel).Model(
                pb.FetchWeightsRequest(weights_hash=model_hash), timeout=120
            ):
                parts.append(chunk.data)
        except grpc.RpcError as error:
            raise click.ClickException(f"{address}: {error.details()}") from None
    data = b"".join(parts)
    from safetensors.torch import load

    from learnchain.ml.codec import compute_weights_hash

    if compute_weights_hash(load(data)) != model_hash:
        raise click.ClickException("the weights the node sent do not match the chain's model hash")
    try:
        out.write_bytes(data)
    except OSError as error:
        raise click.ClickException(f"cannot write {out}: {error.strerror}") from None
    payload = {
        "out": str(out),
        "height": at,
        "model_hash": model_hash.hex(),
        "size_bytes": len(data),
    }
    emit(output, payload)
