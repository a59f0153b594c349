"""The dashboard's view of a chain, read through a fake Query service: each height summarised
once, signing records, faults, the recorded scores and the baselines."""

from __future__ import annotations

import json
from typing import Any

from learnchain.consensus.crypto import compute_hash
from learnchain.consensus.params import SCORE_UNIT
from learnchain.node.rpc.dashboard import Baselines, ChainView
from learnchain.proto import learnchain_pb2 as pb
from learnchain.proto.wire import block_to_proto, commit_to_proto
from tests.consensus.chain import MODEL, Chain, make_genesis_state, make_keys

KEYS = make_keys(4)


class FakeQuery:
    """The Query calls the dashboard makes, answered from a chain built in memory."""

    def __init__(self, chain: Chain, blocks: list[pb.BlockWithCommit]) -> None:
        self.chain = chain
        self.blocks = blocks
        self.scores: dict[int, int] = {}
        self.block_calls: list[int] = []
        self.left: set[bytes] = set()  # validators to leave out of the set
        self.reputations: dict[str, int] | None = None  # None: the chain keeps none

    def Status(self, _request: Any, timeout: float) -> pb.StatusResponse:
        return pb.StatusResponse(
            chain_id="test-chain", moniker="node0", height=len(self.blocks), peers=3
        )

    def Validators(self, _request: Any, timeout: float) -> pb.ValidatorsResponse:
        members = [
            pb.Validator(address=v.address, power=v.power, endpoint=v.endpoint)
            for v in self.chain.state.validators.validators
            if v.address not in self.left
        ]
        return pb.ValidatorsResponse(
            validators=pb.ValidatorSet(validators=members),
            reputations=self.reputations or {},
            keeps_reputation=self.reputations is not None,
        )

    def GetBlock(self, request: pb.BlockRequest, timeout: float) -> pb.BlockWithCommit:
        self.block_calls.append(request.height)
        return self.blocks[request.height - 1]

    def History(self, request: pb.HistoryRequest, timeout: float) -> pb.HistoryResponse:
        return pb.HistoryResponse(
            entries=[pb.HistoryEntry(height=h, score=s) for h, s in self.scores.items()]
        )

    def Genesis(self, _request: Any, timeout: float) -> pb.GenesisResponse:
        genesis = json.dumps({"initial_model_hash": MODEL.hex()}).encode()
        return pb.GenesisResponse(genesis_json=genesis)


def grow(query: FakeQuery, models: list[bool], signers: int = 4) -> None:
    """Commit one block per entry (a new model where True), signed by the first ``signers``."""
    for updated in models:
        chain = query.chain
        model = compute_hash(f"model-{len(query.blocks)}".encode()) if updated else None
        block = chain.next_block(model_hash=model)
        scores = {k.address: 900_000 for k in KEYS[:signers]} if updated else None
        chain.commit(block, signers=KEYS[:signers], scores=scores)
        assert chain.last_commit is not None
        query.blocks.append(
            pb.BlockWithCommit(
                block=block_to_proto(block), commit=commit_to_proto(chain.last_commit)
            )
        )


def make_view(baselines: Baselines | None = None) -> tuple[ChainView, FakeQuery]:
    query = FakeQuery(Chain(make_genesis_state(KEYS), KEYS), [])
    return ChainView(query, baselines), query


def test_each_height_shows_its_proposer_votes_update_and_score() -> None:
    view, query = make_view()
    grow(query, [False, True, False], signers=3)
    query.scores = {2: round(0.91 * SCORE_UNIT)}
    state = view.read()
    assert state["height"] == 3 and len(state["validators"]) == 4
    _, update, after = state["blocks"]
    assert update["model_updated"] and not after["model_updated"]
    assert len(update["signers"]) == 3 and update["set_size"] == 4
    assert update["score"] == 0.91 and after["score"] is None
    assert set(update["scores"].values()) == {0.9}
    assert update["time"].endswith("Z")


def test_signing_records_count_the_blocks_each_validator_signed() -> None:
    view, query = make_view()
    grow(query, [False, False], signers=3)
    records = {v["address"]: v["signed"] for v in view.read()["validators"]}
    assert sorted(records.values()) == [0, 2, 2, 2]


def test_each_validators_reputation_is_shown_when_the_chain_keeps_it() -> None:
    view, query = make_view()
    grow(query, [True])
    assert {v["reputation"] for v in view.read()["validators"]} == {None}
    first = KEYS[0].address.hex()
    query.reputations = {first: -708_800}
    shown = {v["address"]: v["reputation"] for v in view.read()["validators"]}
    assert shown[first] == -0.7088 and sorted(set(shown.values())) == [-0.7088, 0.0]


def test_a_committed_block_is_read_once() -> None:
    view, query = make_view()
    grow(query, [True, True])
    view.read()
    grow(query, [True])
    view.read()
    assert sorted(query.block_calls) == [1, 2, 3]


def test_a_validator_that_left_the_set_is_a_fault() -> None:
    view, query = make_view()
    grow(query, [False])
    view.read()
    gone = query.chain.state.validators.validators[0].address
    query.left = {gone}
    faults = view.read()["faults"]
    assert [(f["validator"], "left" in f["kind"]) for f in faults] == [(gone.hex(), True)]


def test_the_baselines_are_passed_to_the_page() -> None:
    view, query = make_view(Baselines([0.8, 0.85], 0.97))
    grow(query, [True])
    assert view.read()["baselines"] == {"alone": [0.8, 0.85], "pooled": 0.97}
