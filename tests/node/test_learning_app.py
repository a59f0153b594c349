"""The learning application behind consensus: a solo proposer trains and stores its update, a
verdict scores fetched weights on the private vote set (and rejects weights nobody has), a
contribution from a peer is checked before its weights are kept, and in aggregate mode a
committed block sets off a signed contribution."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

from learnchain.consensus.crypto import PrivateKey, SignatureVerifier, compute_hash
from learnchain.consensus.events import RequestProposal, RequestVerdict
from learnchain.consensus.messages import Block, Contribution
from learnchain.consensus.params import SCORE_UNIT, ChainParams, Mode
from learnchain.consensus.state import ChainState
from learnchain.consensus.types import Hash, Height, Round, Signature
from learnchain.consensus.validators import ValidatorSet
from learnchain.ml.adversaries import ByzantineLearner
from learnchain.ml.codec import StateDict, compute_weights_hash, encode_weights
from learnchain.ml.data import PartyData, load_digits_party
from learnchain.ml.learner import Learner
from learnchain.ml.tasks import TaskConfig, get_task
from learnchain.node.learning.app_interface import ModelUpdate, Verdict
from learnchain.node.learning.contribution_pool import ContributionError, ContributionPool
from learnchain.node.learning.learning_app import LearningApp
from learnchain.node.store.store import Store
from learnchain.node.store.store_worker import StoreWorker
from learnchain.node.store.weights_store import EncodedWeights
from learnchain.node.training.learning_worker import LearningWorker
from learnchain.node.weights.weights_pool import WeightsPool
from tests.consensus.chain import Chain, make_genesis_state, make_keys

KEYS = make_keys(2)
T = TypeVar("T")


class Consensus:
    def __init__(self, state: ChainState) -> None:
        self.state = state

    @property
    def validators(self) -> ValidatorSet:
        return self.state.validators

    def is_validator(self) -> bool:
        return True

    def set_learning_budget(self, budget_ms: int) -> None:
        self.learning_budget = budget_ms

    def get_block(self, block_hash: Hash) -> Block | None:
        return None


def with_app(
    tmp_path: Path,
    mode: Mode,
    scenario: Callable[[LearningApp, Consensus, list[Contribution]], Awaitable[T]],
    appraise: bool = True,
    task_config: TaskConfig | None = None,
    keys: list[PrivateKey] = KEYS,
) -> T:
    async def run() -> T:
        data, _ = load_digits_party(0, 5, "iid", seed=0)
        io = StoreWorker(Store(tmp_path / "chain.db"))
        learner = Learner(get_task(task_config or TaskConfig()), data, seed=0)
        learning = LearningWorker(learner, io.store.weights)
        genesis = make_genesis_state(keys, params=ChainParams(mode=mode))
        consensus = Consensus(replace(genesis, model_hash=learning.current_hash()))
        weights = WeightsPool(io, learning, lambda: [], lambda: None, [], 10)
        announced: list[Contribution] = []
        app = LearningApp(
            learning,
            weights,
            ContributionPool(SignatureVerifier()),
            consensus,
            keys[0],
            True,
            5.0,
            lambda: False,
            lambda contribution, _: announced.append(contribution),
            appraise=appraise,
        )
        try:
            return await scenario(app, consensus, announced)
        finally:
            app.close()
            weights.close()
            learning.close()
            io.close()

    return asyncio.run(run())


def test_a_solo_proposer_trains_ahead_of_its_turn_then_proposes_and_pushes_its_update(
    tmp_path: Path,
) -> None:
    async def scenario(app: LearningApp, consensus: Consensus, _: object) -> None:
        base = consensus.state.model_hash
        early = await app.prepare_proposal(RequestProposal(Height(1), Round(0), base))
        assert early.model_hash == base, "nothing trained yet: the block keeps the model"
        app.on_commit(consensus.state)
        for _ in range(400):
            update = await app.prepare_proposal(RequestProposal(Height(1), Round(0), base))
            if update.model_hash != base:
                break
            await asyncio.sleep(0.025)
        assert update.model_hash != base and update.contributions == ()
        assert app.weights.has(update.model_hash)
        assert app.get_inline_weights(update.model_hash) != b""
        assert app.get_inline_weights(base) == b""

    with_app(tmp_path, Mode.SOLO, scenario)


def test_after_two_failed_rounds_a_proposal_keeps_the_model(tmp_path: Path) -> None:
    async def scenario(app: LearningApp, consensus: Consensus, _: object) -> None:
        base = consensus.state.model_hash
        update = await app.prepare_proposal(RequestProposal(Height(1), Round(2), base))
        assert update.model_hash == base

    with_app(tmp_path, Mode.SOLO, scenario)


def test_a_verdict_scores_the_proposed_weights_and_rejects_weights_nobody_has(
    tmp_path: Path,
) -> None:
    async def scenario(
        app: LearningApp, consensus: Consensus, _: object
    ) -> tuple[Verdict, Verdict]:
        chain = Chain(consensus.state, KEYS)
        trained = await app.learning.propose()  # stored as it is written
        good = chain.next_block(model_hash=trained.weights_hash)
        missing = chain.next_block(model_hash=compute_hash(b"nowhere"))
        base = consensus.state.model_hash
        return (
            await app.process_proposal(RequestVerdict(Height(1), Round(0), good, base)),
            await app.process_proposal(RequestVerdict(Height(1), Round(0), missing, base)),
        )

    good, missing = with_app(tmp_path, Mode.SOLO, scenario)
    assert good.approved and good.score is not None and 0 < good.score <= SCORE_UNIT
    assert missing == Verdict(False)


def test_a_committed_block_sets_off_a_signed_contribution(tmp_path: Path) -> None:
    async def scenario(
        app: LearningApp, consensus: Consensus, announced: list[Contribution]
    ) -> None:
        app.on_commit(consensus.state)
        for _ in range(200):
            if announced:
                break
            await asyncio.sleep(0.05)
        (contribution,) = announced
        assert contribution.validator == KEYS[0].address
        assert contribution.height == consensus.state.height
        assert app.weights.has(contribution.weights_hash)
        assert set(app.contributions.get(consensus.state.height)) == {KEYS[0].address}
        assert contribution.weights_hash in app.weights_in_use()

    with_app(tmp_path, Mode.AGGREGATE, scenario)


async def wait_for_announcements(announced: list[Contribution], count: int) -> None:
    for _ in range(200):
        if len(announced) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(announced)} contributions announced, {count} awaited")


def test_plain_blocks_keep_a_contribution_but_one_after_failed_rounds_retrains(
    tmp_path: Path,
) -> None:
    async def scenario(
        app: LearningApp, consensus: Consensus, announced: list[Contribution]
    ) -> None:
        app.on_commit(consensus.state)
        await wait_for_announcements(announced, 1)
        chain = Chain(consensus.state, KEYS)
        consensus.state = chain.advance()  # a plain block, committed in round 0
        app.on_commit(consensus.state, commit_round=0)
        await asyncio.sleep(0.3)
        assert len(announced) == 1, "training in flight stays valid across plain blocks"
        consensus.state = chain.advance()  # a plain block after two failed rounds
        app.on_commit(consensus.state, commit_round=2)
        await wait_for_announcements(announced, 2)
        first, second = announced
        assert first.height == second.height == 0, "both trained from the genesis model"
        assert first.weights_hash != second.weights_hash, "fresh batches for a new attempt"
        assert app.contributions.get(Height(0))[KEYS[0].address] == second

    with_app(tmp_path, Mode.AGGREGATE, scenario)


def test_a_peers_contribution_is_checked_before_its_weights_are_kept(tmp_path: Path) -> None:
    async def scenario(app: LearningApp, consensus: Consensus, _: object) -> None:
        trained = await peer_weights(app)
        unsigned = Contribution(
            consensus.state.chain_id,
            consensus.state.height,
            KEYS[1].address,
            trained.weights_hash,
            10,
            KEYS[1].sign(b"not the sign bytes"),
        )
        with pytest.raises(ContributionError, match="signature"):
            app.receive_contribution(unsigned, trained.data)
        assert not app.weights.has(trained.weights_hash)
        signed = replace(unsigned, signature=KEYS[1].sign(unsigned.sign_bytes()))
        app.receive_contribution(signed, trained.data)
        assert app.weights.has(trained.weights_hash)
        assert (await app.weights.get(trained.weights_hash)) is not None, "checked and kept"

    with_app(tmp_path, Mode.AGGREGATE, scenario)


@dataclass(frozen=True)
class PeerWeights:
    """Weights another validator trained, as they would arrive (bytes), and their hash."""

    weights_hash: Hash
    data: bytes


async def peer_weights(app: LearningApp, party: int = 1) -> PeerWeights:
    """What a peer's learner trains from the same genesis model on its own shard."""
    learner = Learner(get_task(app.learning.learner.task.config), load_party(party), party)
    return encode_peer(learner.propose())


def load_party(party: int) -> PartyData:
    return load_digits_party(party, 5, "iid", 0)[0]


def encode_peer(state: StateDict) -> PeerWeights:
    return PeerWeights(Hash(compute_weights_hash(state)), encode_weights(state))


async def make_aggregate(
    app: LearningApp, state: ChainState
) -> tuple[EncodedWeights, list[Hash], tuple[Contribution, ...]]:
    """Both validators' signed contributions (stored), and the rule's aggregate of them."""
    own = await app.learning.propose()
    other = await peer_weights(app)
    app.weights.offer(other.weights_hash, other.data)
    other_path = await app.weights.get(other.weights_hash)
    assert other_path is not None
    trained = [(own.weights_hash, own.path), (other.weights_hash, other_path)]
    contributions = []
    for key, (weights_hash, _) in zip(KEYS, trained, strict=True):
        unsigned = Contribution(
            state.chain_id,
            state.learning.model_height,
            key.address,
            weights_hash,
            100,
            KEYS[0].sign(b""),
        )
        contributions.append(replace(unsigned, signature=key.sign(unsigned.sign_bytes())))
    inputs = [
        (c.validator.hex(), path, c.samples)
        for c, (_, path) in zip(contributions, trained, strict=True)
    ]
    aggregate, used = await app.learning.aggregate(inputs)
    assert len(used) == 2
    return aggregate, [weights_hash for weights_hash, _ in trained], tuple(contributions)


def test_in_aggregate_mode_a_verdict_approves_only_the_rules_aggregate_of_the_listed_contributions(
    tmp_path: Path,
) -> None:
    """§3.7: the validator re-computes the aggregate from the block's contributions, so a
    proposer cannot propose weights of its own, even a contributor's."""

    async def scenario(app: LearningApp, consensus: Consensus, _: object) -> list[Verdict]:
        state = consensus.state
        aggregate, trained, listed = await make_aggregate(app, state)
        chain = Chain(state, KEYS)
        blocks = [
            chain.next_block(model_hash=aggregate.weights_hash, contributions=listed),
            chain.next_block(model_hash=trained[1], contributions=listed),
            chain.next_block(model_hash=aggregate.weights_hash, contributions=listed[:1]),
        ]
        base = state.model_hash
        return [
            await app.process_proposal(RequestVerdict(Height(1), Round(0), block, base))
            for block in blocks
        ]

    aggregate, own_weights, fewer_listed = with_app(tmp_path, Mode.AGGREGATE, scenario)
    assert aggregate.approved and len(aggregate.values) == 2
    assert own_weights == Verdict(False)
    assert fewer_listed == Verdict(False)


def test_a_validator_that_does_not_appraise_approves_without_values(tmp_path: Path) -> None:
    """config ``appraise = false``: the verdict is the same, its precommit carries no values."""

    async def scenario(app: LearningApp, consensus: Consensus, _: object) -> Verdict:
        aggregate, _, listed = await make_aggregate(app, consensus.state)
        block = Chain(consensus.state, KEYS).next_block(
            model_hash=aggregate.weights_hash, contributions=listed
        )
        base = consensus.state.model_hash
        return await app.process_proposal(RequestVerdict(Height(1), Round(0), block, base))

    verdict = with_app(tmp_path, Mode.AGGREGATE, scenario, appraise=False)
    assert verdict.approved and verdict.score is not None and verdict.values == ()


def test_a_restarted_validator_takes_the_chains_last_step_for_its_server_momentum(
    tmp_path: Path,
) -> None:
    """After a restart (or a catch-up across models) the learner's own last step is not the
    chain's; the app restores the chain's previous model, so its aggregates and its checks of
    others' agree on the server momentum (§3.7) - unless momentum is off after a failed attempt."""

    async def scenario(
        app: LearningApp, consensus: Consensus, _: object
    ) -> tuple[Hash | None, ...]:
        initial = app.learning.current_hash()
        previous, current = await app.learning.propose(), await app.learning.propose()
        # the restarted node jumped to the chain's model
        await app.learning.accept(current.path, current.weights_hash)
        seen = [app.learning.previous_hash]
        app.weights.retained.extend([previous.weights_hash, current.weights_hash])
        learning = replace(consensus.state.learning, model_height=Height(3))
        consensus.state = replace(
            consensus.state, height=Height(4), model_hash=current.weights_hash, learning=learning
        )
        app.on_commit(consensus.state)
        for _ in range(200):
            if app.learning.previous_hash == previous.weights_hash:
                break
            await asyncio.sleep(0.01)
        seen.append(app.learning.previous_hash)
        app.learning.forget_momentum()
        app.on_commit(consensus.state)
        await asyncio.sleep(0.2)
        seen.append(app.learning.previous_hash)
        assert seen[0] == initial
        return (previous.weights_hash, *seen[1:])

    previous, restored, after_failure = with_app(tmp_path, Mode.AGGREGATE, scenario)
    assert restored == previous
    assert after_failure is None


def test_a_proposer_lists_the_contributions_its_screening_left_out(tmp_path: Path) -> None:
    """§3.5: the validators appraise them too, so that a harmful one forfeits its deposit."""
    keys = make_keys(3)

    async def scenario(
        app: LearningApp, consensus: Consensus, announced: list[Contribution]
    ) -> tuple[ModelUpdate, Verdict]:
        state = consensus.state
        app.on_commit(state)
        await wait_for_announcements(announced, 1)
        task = get_task(TaskConfig())
        honest = Learner(task, load_digits_party(1, 5, "iid", 0)[0], 1)
        flipper = ByzantineLearner(task, load_digits_party(2, 5, "iid", 0)[0], "label_flip", 2)
        for key, learner in ((keys[1], honest), (keys[2], flipper)):
            trained = encode_peer(learner.propose())
            unsigned = Contribution(
                state.chain_id, state.height, key.address, trained.weights_hash, 100, Signature(b"")
            )
            signed = replace(unsigned, signature=key.sign(unsigned.sign_bytes()))
            app.receive_contribution(signed, trained.data)
        base = state.model_hash
        for _ in range(200):
            update = await app.prepare_proposal(RequestProposal(Height(1), Round(0), base))
            if update.model_hash != base:
                break
            await asyncio.sleep(0.05)
        block = Chain(state, keys).next_block(
            model_hash=update.model_hash,
            contributions=update.contributions,
            screened=update.screened,
        )
        return update, await app.process_proposal(RequestVerdict(Height(1), Round(0), block, base))

    update, verdict = with_app(
        tmp_path,
        Mode.AGGREGATE,
        scenario,
        task_config=TaskConfig(aggregation="screened_mean"),
        keys=keys,
    )
    assert {c.validator for c in update.contributions} == {keys[0].address, keys[1].address}
    assert [c.validator for c in update.screened] == [keys[2].address]
    assert verdict.approved and len(verdict.values) == 3
    assert verdict.values[2] < 0, "this validator finds the flipped contribution harmful"


def test_a_validator_that_speculated_the_aggregate_judges_it_without_recomputing(
    tmp_path: Path,
) -> None:
    """node/learning/speculation.py: the aggregate and the appraisal computed ahead of the proposal
    are the verdict's, when the block lists exactly those contributions and names exactly that
    hash; a block listing fewer is judged the usual way."""

    async def scenario(
        app: LearningApp, consensus: Consensus, _: object
    ) -> tuple[Verdict, Verdict, int]:
        state = consensus.state
        aggregate, _, listed = await make_aggregate(app, state)
        await app.speculator.speculate(state, list(listed))
        speculation = app.speculator.current
        assert speculation is not None
        assert speculation.weights.weights_hash == aggregate.weights_hash, "deterministic"
        recomputed = 0
        check = app.learning.check_aggregate

        async def counting_check(*args: Any, **kwargs: Any) -> bool:
            nonlocal recomputed
            recomputed += 1
            return await check(*args, **kwargs)

        app.learning.check_aggregate = counting_check  # type: ignore[method-assign]
        chain = Chain(state, KEYS)
        base = state.model_hash
        same = chain.next_block(model_hash=aggregate.weights_hash, contributions=listed)
        fewer = chain.next_block(model_hash=aggregate.weights_hash, contributions=listed[:1])
        judged = await app.process_proposal(RequestVerdict(Height(1), Round(0), same, base))
        assert recomputed == 0
        other = await app.process_proposal(RequestVerdict(Height(1), Round(0), fewer, base))
        return judged, other, recomputed

    judged, other, recomputed = with_app(tmp_path, Mode.AGGREGATE, scenario)
    assert judged.approved and len(judged.values) == 2
    assert other == Verdict(False) and recomputed == 1, "judged the usual way: not the rule's"
