"""A genesis made by organisations that share no key and no data (CometBFT / Cosmos SDK's
``gentx`` and ``collect-gentxs``).

1. Each organisation, on its own machine, signs a **gentx** with its node key: the chain id, its
   stake, the endpoint its peers will dial, its moniker, the summary of its data file
   (ml/data_summary.py: rows, per-feature sums and sums of squared deviations, never a row) and,
   for mutual TLS, the certificate of its own authority (never a key).
2. Anyone **collects** the gentx files with the chain's parameters and task into genesis.json:
   every signature is checked first, then the chain id, then duplicates; the task's shape and
   standardisation come from the pooled summaries.
3. Each organisation **validates** the genesis: its own entry is there unchanged, its data fits
   the task, and it compares the file's hash with the others' before starting.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from learnchain.consensus.crypto import (
    PrivateKey,
    compute_address,
    is_valid_public_key,
    is_valid_signature,
)
from learnchain.consensus.params import ChainParams, GenesisValidator
from learnchain.consensus.types import (
    MAX_MONIKER_LENGTH,
    PUBLIC_KEY_LENGTH,
    SIGNATURE_LENGTH,
    Address,
    ChainId,
    PublicKey,
    Signature,
    Stake,
    TimeMs,
    Tokens,
    is_valid_moniker,
)
from learnchain.ml.config import TaskConfig
from learnchain.ml.data_summary import DataSummary, summary_from_dict, summary_to_dict
from learnchain.ml.errors import DataError
from learnchain.node.home.files import GenesisFile, parse_hex
from learnchain.node.home.testnet import compute_genesis_file

GENTX_KIND = "learnchain/gentx"
GENTX_VERSION = 1
SIGNING_DOMAIN = b"learnchain gentx v1\x00"
MAX_GENTX_BYTES = 16 << 20  # a summary of up to about a million features; never more is read
_PEM_CERTIFICATE = re.compile(
    r"-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?"
)


class CeremonyError(ValueError):
    """A gentx or genesis that cannot be used; one line naming the file."""


@dataclass(frozen=True)
class Gentx:
    """One organisation's signed entry for a new chain's genesis."""

    chain_id: ChainId
    public_key: PublicKey
    stake: Stake
    endpoint: str  # HOST:PORT its peers dial
    moniker: str
    task: str = ""  # the task whose reader summarised the data ("" without data)
    label_column: str = "label"
    data: DataSummary | None = None
    tls_authority: str = ""  # PEM certificate of the organisation's own authority, or ""
    signature: Signature = Signature(b"")

    @property
    def address(self) -> Address:
        """The validator's address."""
        return compute_address(self.public_key)


def compute_gentx_body(gentx: Gentx) -> dict[str, Any]:
    """Everything a gentx says except its signature, in its JSON form."""
    return {
        "kind": GENTX_KIND,
        "version": GENTX_VERSION,
        "chain_id": gentx.chain_id,
        "public_key": gentx.public_key.hex(),
        "address": gentx.address.hex(),
        "stake": gentx.stake,
        "endpoint": gentx.endpoint,
        "moniker": gentx.moniker,
        "task": gentx.task,
        "label_column": gentx.label_column,
        "data": summary_to_dict(gentx.data) if gentx.data is not None else None,
        "tls_authority": gentx.tls_authority,
    }


def compute_signing_bytes(body: dict[str, Any]) -> bytes:
    """What a gentx's signature covers: the domain and the body as canonical JSON."""
    return SIGNING_DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def sign_gentx(key: PrivateKey, gentx: Gentx) -> Gentx:
    """``gentx`` signed by its node key."""
    if key.public_key != gentx.public_key:
        raise ValueError("a gentx is signed by the key it names")
    return replace(gentx, signature=key.sign(compute_signing_bytes(compute_gentx_body(gentx))))


def gentx_to_json(gentx: Gentx) -> dict[str, Any]:
    """The gentx file's content."""
    return {**compute_gentx_body(gentx), "signature": gentx.signature.hex()}


def write_gentx(path: Path, gentx: Gentx) -> None:
    """Write a gentx file (public: it holds no secret)."""
    path.write_text(json.dumps(gentx_to_json(gentx), indent=2) + "\n")


def read_gentx(path: Path) -> Gentx:
    """A gentx file, its signature checked before anything it says is used; CeremonyError
    naming the file and the first problem."""
    try:
        with path.open("rb") as handle:
            raw_bytes = handle.read(MAX_GENTX_BYTES + 1)
    except OSError as error:
        raise CeremonyError(f"{path}: cannot read it ({error.strerror})") from None
    if len(raw_bytes) > MAX_GENTX_BYTES:
        raise CeremonyError(f"{path}: larger than {MAX_GENTX_BYTES} bytes; not a gentx")
    try:
        raw = json.loads(raw_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CeremonyError(f"{path}: not readable JSON ({error})") from None
    if not isinstance(raw, dict) or raw.get("kind") != GENTX_KIND:
        raise CeremonyError(f'{path}: not a gentx (no "kind": "{GENTX_KIND}")')
    if raw.get("version") != GENTX_VERSION:
        raise CeremonyError(
            f"{path}: gentx version {raw.get('version')!r}; this build reads {GENTX_VERSION}"
        )
    public_key = PublicKey(_hex(path, raw, "public_key", PUBLIC_KEY_LENGTH))
    signature = Signature(_hex(path, raw, "signature", SIGNATURE_LENGTH))
    body = {k: v for k, v in raw.items() if k != "signature"}
    if not is_valid_public_key(public_key) or not is_valid_signature(
        public_key, compute_signing_bytes(body), signature
    ):
        raise CeremonyError(f"{path}: bad signature (the file was changed after it was signed)")
    try:
        return _gentx_from_body(body, public_key, signature)
    except (DataError, ValueError) as error:
        raise CeremonyError(f"{path}: {error}") from None


def _hex(path: Path, raw: dict[str, Any], field: str, length: int) -> bytes:
    try:
        return parse_hex(raw.get(field), length)
    except ValueError as error:
        raise CeremonyError(f"{path}: {field}: {error}") from None


def check_gentx(gentx: Gentx) -> None:
    """ValueError naming the first field of ``gentx`` that ``read_gentx`` would refuse."""
    _gentx_from_body(compute_gentx_body(gentx), gentx.public_key, gentx.signature)


def _gentx_from_body(body: dict[str, Any], public_key: PublicKey, signature: Signature) -> Gentx:
    from learnchain.node.home.files import check_host_port

    expected = set(compute_gentx_body(Gentx(ChainId(""), public_key, Stake(1), "", "")))
    unknown = sorted(set(body) - expected)
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}")
    chain_id, stake, endpoint, moniker = (
        body.get(k) for k in ("chain_id", "stake", "endpoint", "moniker")
    )
    if not isinstance(chain_id, str) or not 0 < len(chain_id) <= 64:
        raise ValueError("chain_id: expected 1 to 64 characters")
    if not isinstance(stake, int) or isinstance(stake, bool) or stake <= 0:
        raise ValueError(f"stake: expected a positive whole number, got {stake!r}")
    if body.get("address") != compute_address(public_key).hex():
        raise ValueError("address: does not match public_key")
    if not isinstance(endpoint, str):
        raise ValueError("endpoint: expected HOST:PORT")
    check_host_port(Path("gentx"), "endpoint", endpoint)
    if not isinstance(moniker, str) or not moniker or not is_valid_moniker(moniker):
        raise ValueError(f"moniker: expected 1 to {MAX_MONIKER_LENGTH} printable characters")
    task, label_column, authority = (body.get(k) for k in ("task", "label_column", "tls_authority"))
    if not all(isinstance(v, str) for v in (task, label_column, authority)):
        raise ValueError("task, label_column and tls_authority are strings")
    if authority and not _PEM_CERTIFICATE.fullmatch(str(authority)):
        raise ValueError("tls_authority: expected one PEM certificate")
    data = None if body.get("data") is None else summary_from_dict(body["data"])
    if data is not None and not task:
        raise ValueError("task: names the task that read the data")
    return Gentx(
        ChainId(chain_id),
        public_key,
        Stake(stake),
        endpoint,
        moniker,
        str(task),
        str(label_column),
        data,
        str(authority),
        signature,
    )


def check_gentxs(named: list[tuple[Path, Gentx]], chain_id: str) -> None:
    """CeremonyError naming the first gentx for another chain, or one whose key, endpoint or
    moniker another gentx already has."""
    if not named:
        raise CeremonyError("no gentx files: every founding validator signs one")
    seen: dict[tuple[str, object], Path] = {}
    for path, gentx in named:
        if gentx.chain_id != chain_id:
            raise CeremonyError(f"{path}: for chain {gentx.chain_id!r}, not {chain_id!r}")
        for field, value in (
            ("key", gentx.public_key),
            ("endpoint", gentx.endpoint),
            ("moniker", gentx.moniker),
        ):
            if (field, value) in seen:
                raise CeremonyError(f"{path}: the same {field} as {seen[field, value]}")
            seen[field, value] = path
    with_data = [path for path, g in named if g.data is not None]
    if with_data and len(with_data) != len(named):
        missing = next(path for path, g in named if g.data is None)
        raise CeremonyError(
            f"{missing}: no data summary, while {with_data[0]} has one; a chain made from data "
            "files needs every founder's (learnchain genesis gentx --data-file F)"
        )


def check_task_of(named: list[tuple[Path, Gentx]], task: str) -> None:
    """CeremonyError naming a gentx whose data was read by another task than the chain's."""
    for path, gentx in named:
        if gentx.data is not None and gentx.task != task:
            raise CeremonyError(
                f"{path}: its data was summarised by task {gentx.task!r}, the chain's is "
                f"{task!r}; sign it again with --task {task}"
            )


def create_ceremony_genesis(
    chain_id: str,
    gentxs: list[Gentx],
    task: TaskConfig,
    params: ChainParams,
    balance: int,
    genesis_time_ms: int | None = None,
    pretrained: str = "",
) -> GenesisFile:
    """The genesis of the gentxs' validators, each account funded with ``balance``, the
    organisations' TLS authorities as the network's roots."""
    params.validate()
    validators = [GenesisValidator(g.public_key, g.stake, g.endpoint, g.moniker) for g in gentxs]
    genesis = compute_genesis_file(
        ChainId(chain_id),
        validators,
        [(g.address, Tokens(balance)) for g in gentxs],
        task,
        params,
        TimeMs(int(time.time() * 1000) if genesis_time_ms is None else genesis_time_ms),
        pretrained,
    )
    roots = tuple(g.tls_authority for g in gentxs if g.tls_authority)
    return replace(genesis, tls_roots=roots)


def find_entry_problem(genesis: GenesisFile, gentx: Gentx) -> str | None:
    """Why the genesis does not hold ``gentx``'s entry unchanged, or None when it does."""
    if genesis.genesis.chain_id != gentx.chain_id:
        chain = genesis.genesis.chain_id
        return f"the genesis is for chain {chain!r}, the gentx for {gentx.chain_id!r}"
    mine = [v for v in genesis.genesis.validators if v.public_key == gentx.public_key]
    if not mine:
        return f"validator {gentx.address.hex()} ({gentx.moniker}) is not in it"
    entry = mine[0]
    for field, found, signed in (
        ("stake", entry.stake, gentx.stake),
        ("endpoint", entry.endpoint, gentx.endpoint),
        ("moniker", entry.moniker, gentx.moniker),
    ):
        if found != signed:
            return f"its {field} is {found!r}, the gentx signed {signed!r}"
    if gentx.tls_authority and gentx.tls_authority not in genesis.tls_roots:
        return "its TLS authority is not among the genesis's tls_roots"
    return None
