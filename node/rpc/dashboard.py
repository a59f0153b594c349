"""``learnchain dashboard``: a web page of one node's view of the chain, read over its Query
service: height, validators with stake and signing record, the proposer and votes of each height,
the model's score round by round (the validators' median and each one's own) beside each party
alone and pooled, and faults (evidence, validators gone from the set)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any

import grpc

from learnchain.consensus.params import SCORE_UNIT
from learnchain.node.home.files import format_time_ms
from learnchain.proto import learnchain_pb2 as pb
from learnchain.proto import learnchain_pb2_grpc as pb_grpc
from learnchain.proto.wire import get_reputation

BLOCK_WINDOW = 200  # the heights the page shows, up to the latest
CALL_TIMEOUT = 10.0
TRAINING_ENDS = {1: "budget", 2: "target", 3: "plateau"}


@dataclass
class Baselines:
    """What collective learning is compared with, on the same held-out test set."""

    alone: list[float] = field(default_factory=list)  # each party trained alone
    pooled: float | None = None  # one model trained on all parties' data


@dataclass
class BlockSummary:
    """What the page shows of one committed height."""

    height: int
    time: str  # the block's BFT time, ISO 8601 UTC
    proposer: str
    round: int  # the round it was committed in: the rounds before it failed
    model_updated: bool
    signers: list[str]
    scores: dict[str, float]  # each signer's score of the block's model on its own data
    evidence: list[str]  # validators caught signing twice
    txs: int


def compute_block_summary(item: pb.BlockWithCommit, model_before: bytes) -> BlockSummary:
    """One block and its commit, summarised."""
    header = item.block.header
    signatures = item.commit.signatures
    return BlockSummary(
        height=header.height,
        time=format_time_ms(header.time_ms),
        proposer=header.proposer.hex(),
        round=item.commit.round,
        model_updated=header.model_hash != model_before,
        signers=[s.validator.hex() for s in signatures],
        scores={s.validator.hex(): s.score / SCORE_UNIT for s in signatures if s.HasField("score")},
        evidence=sorted({e.vote_a.validator.hex() for e in item.block.evidence}),
        txs=len(item.block.txs),
    )


class ChainView:
    """A node's chain as the dashboard shows it; committed blocks are read once and kept."""

    def __init__(self, stub: pb_grpc.QueryStub, baselines: Baselines | None = None) -> None:
        self._stub = stub
        self.baselines = baselines
        self._blocks: dict[int, BlockSummary] = {}
        self._models: dict[int, bytes] = {}  # model hash after each height read
        self._seen_validators: dict[str, int] = {}  # every validator seen, with its last stake
        self._lock = threading.Lock()

    def read(self) -> dict[str, Any]:
        """The page's data: one JSON object."""
        with self._lock:
            return self._read()

    def _read(self) -> dict[str, Any]:
        status = self._stub.Status(pb.StatusRequest(), timeout=CALL_TIMEOUT)
        validators = self._stub.Validators(pb.ValidatorsRequest(), timeout=CALL_TIMEOUT)
        top = status.height
        low = max(1, top - BLOCK_WINDOW + 1)
        self._read_blocks(low, top)
        blocks = [self._blocks[h] for h in range(low, top + 1) if h in self._blocks]
        recorded = self._read_scores(low, top)
        members = [
            {
                "address": v.address.hex(),
                "stake": v.power,
                "endpoint": v.endpoint,
                # §3.9, in units of loss; None when the chain keeps no reputation
                "reputation": None
                if (reputation := get_reputation(validators, v.address)) is None
                else reputation / SCORE_UNIT,
            }
            for v in validators.validators.validators
        ]
        current = {m["address"] for m in members}
        for member in members:
            member.update(compute_signing_record(member["address"], blocks))
            self._seen_validators[member["address"]] = member["stake"]
        return {
            "chain_id": status.chain_id,
            "moniker": status.moniker,
            "height": top,
            "round": status.round,
            "syncing": status.syncing,
            "peers": status.peers,
            "model_hash": status.model_hash.hex(),
            "training": TRAINING_ENDS.get(status.learning.end, "on"),
            "validators": members,
            "blocks": [
                {**asdict(b), "score": recorded.get(b.height), "set_size": len(members)}
                for b in blocks
            ],
            "faults": compute_faults(blocks, self._seen_validators, current),
            "baselines": None if self.baselines is None else asdict(self.baselines),
        }

    def _read_blocks(self, low: int, top: int) -> None:
        for height in [h for h in list(self._blocks) if h < low]:
            del self._blocks[height]
        for height in range(low, top + 1):
            if height in self._blocks:
                continue
            item = self._stub.GetBlock(pb.BlockRequest(height=height), timeout=CALL_TIMEOUT)
            before = self._models.get(height - 1)
            if before is None:  # the model before the window: the previous block's
                before = (
                    self._stub.GetBlock(
                        pb.BlockRequest(height=height - 1), timeout=CALL_TIMEOUT
                    ).block.header.model_hash
                    if height > 1
                    else self._read_initial_model()
                )
            self._blocks[height] = compute_block_summary(item, before)
            self._models[height] = item.block.header.model_hash
        for height in [h for h in list(self._models) if h < low - 1]:
            del self._models[height]

    def _read_initial_model(self) -> bytes:
        genesis = self._stub.Genesis(pb.GenesisRequest(), timeout=CALL_TIMEOUT).genesis_json
        return bytes.fromhex(json.loads(genesis)["initial_model_hash"])

    def _read_scores(self, low: int, top: int) -> dict[int, float]:
        """The validators' recorded (median) score of each update, by its height."""
        history = self._stub.History(
            pb.HistoryRequest(from_height=low, limit=top - low + 1), timeout=CALL_TIMEOUT
        )
        return {e.height: e.score / SCORE_UNIT for e in history.entries if e.HasField("score")}


def compute_signing_record(address: str, blocks: list[BlockSummary]) -> dict[str, int]:
    """How many of ``blocks`` a validator signed and proposed."""
    return {
        "signed": sum(address in b.signers for b in blocks),
        "proposed": sum(b.proposer == address for b in blocks),
        "window": len(blocks),
    }


def compute_faults(
    blocks: list[BlockSummary], seen: dict[str, int], current: set[str]
) -> list[dict[str, Any]]:
    """Evidence committed in ``blocks``, and validators seen before that left the set."""
    faults: list[dict[str, Any]] = [
        {"height": b.height, "validator": v, "kind": "signed twice (evidence)"}
        for b in blocks
        for v in b.evidence
    ]
    faults += [
        {"height": None, "validator": v, "kind": "left the validator set (jailed or unbonded)"}
        for v in sorted(seen)
        if v not in current
    ]
    return faults


def read_page() -> bytes:
    """The dashboard's single page."""
    return files("learnchain.node.rpc").joinpath("dashboard.html").read_bytes()


def make_handler(read_state: Callable[[], dict[str, Any]]) -> type[BaseHTTPRequestHandler]:
    """An HTTP handler serving the page at / and its data at /api/state."""
    page = read_page()

    class DashboardHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, "text/html; charset=utf-8", page)
            elif self.path == "/api/state":
                try:
                    body = json.dumps(read_state()).encode()
                except grpc.RpcError as error:
                    problem = {"error": f"the node does not answer: {error.code().name}"}
                    self._send(HTTPStatus.BAD_GATEWAY, "application/json", json.dumps(problem))
                    return
                self._send(HTTPStatus.OK, "application/json", body)
            else:
                self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found")

        def _send(self, status: HTTPStatus, kind: str, body: bytes | str) -> None:
            data = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            with contextlib.suppress(ConnectionError):  # the browser went away meanwhile
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the page polls every two seconds: no line per request

    return DashboardHandler


def start_dashboard(listen: str, view: ChainView) -> ThreadingHTTPServer:
    """Serve the dashboard on ``host:port`` from a background thread; the server."""
    host, _, port = listen.rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), make_handler(view.read))
    threading.Thread(target=server.serve_forever, name="dashboard", daemon=True).start()
    return server
