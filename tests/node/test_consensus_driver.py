"""The consensus driver runs a real engine: a lone validator commits blocks through the block
executor, persists its sign state before each signed message goes out, proposes the mempool's
transactions with the application's model update, and takes the application's verdicts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from learnchain.consensus.crypto import compute_hash
from learnchain.consensus.engine import Engine
from learnchain.consensus.events import RequestProposal, RequestVerdict
from learnchain.consensus.messages import SignedTx, TxKind, Vote
from learnchain.consensus.state import ChainState
from learnchain.consensus.types import Address, Hash, Step, Tokens, VoteType
from learnchain.consensus.validators import ValidatorSet
from learnchain.node.chain.block_executor import BlockExecutor
from learnchain.node.chain.consensus_driver import ConsensusDriver
from learnchain.node.chain.engine_inbox import EngineInbox
from learnchain.node.chain.misbehaviour import Misbehaviour
from learnchain.node.learning.app_interface import ModelUpdate, Verdict
from learnchain.node.store.store import Store
from learnchain.node.store.store_worker import StoreWorker
from learnchain.node.telemetry.metrics import Metrics
from learnchain.proto import learnchain_pb2 as pb
from learnchain.proto.wire import proposal_from_proto, vote_from_proto
from tests.consensus.chain import make_genesis_state, make_keys, sign_tx

KEY = make_keys(1)[0]
UPDATE = compute_hash(b"update")


class App:
    """The application: proposes one model update, approves it, records precommits."""

    def __init__(self) -> None:
        self.precommits: list[Vote] = []
        self.offered: list[Hash] = []

    async def prepare_proposal(self, request: RequestProposal) -> ModelUpdate:
        return ModelUpdate(UPDATE if request.height == 1 else request.base_model_hash)

    async def process_proposal(self, request: RequestVerdict) -> Verdict:
        return Verdict(True, 950_000)

    def on_precommit(self, vote: Vote) -> None:
        self.precommits.append(vote)

    def get_inline_weights(self, model_hash: Hash) -> bytes:
        return b"w" if model_hash == UPDATE else b""

    def offer_weights(self, weights_hash: Hash, data: bytes) -> None:
        self.offered.append(weights_hash)


class Gossip:
    """Records what goes out, with the sign state on disk at that moment."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # (what was signed: height, round, step; the sign state on disk when it went out)
        self.sent: list[tuple[tuple[int, int, int], tuple[int, int, int] | None]] = []
        self.inline: list[bytes] = []
        self.votes: list[Vote] = []

    def gossip(self, envelope: pb.Envelope) -> None:
        on_disk = self.store.load_sign_state()
        mark = None if on_disk is None else (on_disk.height, on_disk.round, int(on_disk.step))
        if envelope.HasField("proposal"):
            proposal = proposal_from_proto(envelope.proposal).proposal
            self.sent.append(((proposal.height, proposal.round, int(Step.PROPOSE)), mark))
            self.inline.append(envelope.weights)
        elif envelope.HasField("vote"):
            vote = vote_from_proto(envelope.vote).vote
            self.sent.append(((vote.height, vote.round, int(vote.vote_type)), mark))
            self.votes.append(vote)

    def gossip_to_validator(
        self, validators: ValidatorSet, address: Address, envelope: pb.Envelope
    ) -> bool:
        return False


def run_lone_validator(
    tmp_path: Path,
    heights: int,
    txs: tuple[SignedTx, ...] = (),
    misbehaviour: Misbehaviour | None = None,
) -> tuple[ChainState, App, Gossip, list[int]]:
    genesis = make_genesis_state([KEY], accounts=[(KEY, 100)])
    app, synced = App(), list[int]()

    async def scenario() -> tuple[ChainState, Gossip]:
        store = Store(tmp_path / "chain.db")
        io = StoreWorker(store)
        engine = Engine(genesis, KEY)
        executor = BlockExecutor(io, genesis)
        done = asyncio.Event()
        executor.add_listener(
            lambda action, _: done.set() if action.block.height >= heights else None
        )
        gossip = Gossip(store)
        driver = ConsensusDriver(
            engine,
            EngineInbox(engine),
            io,
            executor,
            app,
            gossip,
            lambda: txs,
            synced.append,
            Metrics(),
            misbehaviour=misbehaviour,
        )
        running = asyncio.create_task(driver.run())
        await asyncio.wait_for(done.wait(), 30)
        running.cancel()
        driver.close()
        io.close()
        return executor.committed, gossip

    committed, gossip = asyncio.run(scenario())
    return committed, app, gossip, synced


def test_a_lone_validator_commits_blocks_with_the_applications_update(tmp_path: Path) -> None:
    committed, app, gossip, synced = run_lone_validator(tmp_path, 3)
    assert committed.height >= 3
    assert committed.model_hash == UPDATE
    assert gossip.inline[0] == b"w"  # our own proposal's weights go beside it
    precommits = [v.height for v in app.precommits if v.vote_type == VoteType.PRECOMMIT]
    assert precommits[:3] == [1, 2, 3]
    assert synced == []
    with Store(tmp_path / "chain.db") as store:
        block = store.get_block(1)
        assert block is not None and block.header.model_hash == UPDATE


def test_every_signed_message_goes_out_after_its_sign_state_is_on_disk(tmp_path: Path) -> None:
    _, _, gossip, _ = run_lone_validator(tmp_path, 3)
    assert len(gossip.sent) >= 9  # a proposal, a prevote and a precommit per height
    for signed, on_disk in gossip.sent:
        assert on_disk is not None and on_disk >= signed, (signed, on_disk)


def test_a_proposal_carries_the_mempools_transactions(tmp_path: Path) -> None:
    tx = sign_tx(KEY, TxKind.TRANSFER, 0, recipient=Address(b"\x01" * 20), amount=Tokens(5))
    run_lone_validator(tmp_path, 1, (tx,))
    with Store(tmp_path / "chain.db") as store:
        block = store.get_block(1)
        assert block is not None and block.txs == (tx,)


def test_an_equivocating_validator_sends_a_second_vote_for_something_else_each_time(
    tmp_path: Path,
) -> None:
    _, _, gossip, _ = run_lone_validator(tmp_path, 2, misbehaviour=Misbehaviour.EQUIVOCATE)
    by_step: dict[tuple[int, int, VoteType], set[Hash | None]] = {}
    for vote in gossip.votes:
        by_step.setdefault((vote.height, vote.round, vote.vote_type), set()).add(vote.block_hash)
    assert by_step and all(len(hashes) == 2 for hashes in by_step.values())
