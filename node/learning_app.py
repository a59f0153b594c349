"""The learning application behind consensus, in the shape of ABCI++.

- ``prepare_proposal``: a proposer's model update: its own, trained ahead (solo), or aggregated
  from the validators' contributions once the round is ready (aggregate); else none.
- ``process_proposal``: the ML half of valid(v): fetch the proposed weights, check their hash,
  in aggregate mode re-compute the aggregate from the listed contributions (§3.7), and score
  the weights on the private vote set (the score rides on the precommit).
- ``on_precommit``: optimistic execution: start training the next contribution from a block this
  node precommits.
- ``on_commit``: follow the committed model and, when it changed, train (an aggregate-mode
  contribution, or a solo update ahead of this node's turn) for as long as training needs:
  plain blocks in between do not invalidate the work (docs/protocol.md §3.2).
- ``has_work``: a learning round is ready to be proposed (wakes a chain that makes no empty
  blocks).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from learnchain.consensus.crypto import PrivateKey
from learnchain.consensus.events import RequestProposal, RequestVerdict
from learnchain.consensus.messages import MAX_SCORE, Block, Contribution, Vote
from learnchain.consensus.params import SCORE_UNIT, Mode
from learnchain.consensus.state import ChainState
from learnchain.consensus.types import Hash, Height, Signature, VoteType
from learnchain.consensus.validators import ValidatorSet, compute_proposer_of_round
from learnchain.ml.adversaries import compute_attack_listing
from learnchain.ml.errors import MLError
from learnchain.node.background import Background
from learnchain.node.contribution_pool import ContributionPool, compute_awaited_contributors
from learnchain.node.learning import EncodedWeights, LearningWorker
from learnchain.node.learning_round import Contributors, LearningRound
from learnchain.node.model_follower import ModelFollower
from learnchain.node.peer_manager import compute_inline_weights
from learnchain.node.verdict_budget import VerdictBudget
from learnchain.node.weights_parts import compute_spread_plan
from learnchain.node.weights_pool import WeightsPool

ROUNDS_BEFORE_PLAIN_BLOCKS = 2
log = logging.getLogger("learnchain.learning")


def is_contributor_quorum(state: ChainState, contributions: Sequence[Contribution]) -> bool:
    """True when ``contributions``' validators hold more than the threshold of stake: an
    aggregate of them is judged by the looser ``task.verified_margin`` (§3.7)."""
    return state.validators.is_quorum_of(
        (c.validator for c in contributions), state.params.threshold
    )


class ConsensusView(Protocol):
    """What the application reads of the consensus engine."""

    @property
    def state(self) -> ChainState:
        """The state after the last decided block."""
        ...

    def set_verdict_budget(self, budget_ms: int) -> None:
        """How long this node's verdicts may take (the engine's local wait)."""
        ...

    @property
    def validators(self) -> ValidatorSet:
        """The current height's validator set."""
        ...

    def is_validator(self) -> bool:
        """True when this node is in the current validator set."""
        ...

    def get_block(self, block_hash: Hash) -> Block | None:
        """A block proposed at the current height, by hash."""
        ...


@dataclass(frozen=True)
class Verdict:
    """The ML half of valid(v) and the score behind it (micro-units, higher is better)."""

    approved: bool
    score: int | None = None
    values: tuple[int, ...] = ()  # the block's contributions' values (micro-units), in order


@dataclass(frozen=True)
class ModelUpdate:
    """What a proposer puts in its block besides transactions."""

    model_hash: Hash
    contributions: tuple[Contribution, ...] = ()
    screened: tuple[Contribution, ...] = ()  # fetched, but left out of the aggregate (§3.5)


@dataclass(frozen=True, slots=True)
class OwnEvaluation:
    """This validator's judgement of a model on its own vote set: the score it signs (micro-units
    of the chain's metric) and, whatever the metric, the accuracy and mean loss behind it."""

    score: int
    accuracy: float
    loss: float


class LearningApp:
    """Proposals, verdicts and contributions on this node's private data."""

    def __init__(
        self,
        learning: LearningWorker,
        weights: WeightsPool,
        contributions: ContributionPool,
        consensus: ConsensusView,
        key: PrivateKey,
        train: bool,
        patience: float,
        syncing: Callable[[], bool],  # catching up: train once at the tip
        announce: Callable[[Contribution, EncodedWeights], None],
        on_ready: Callable[[], None] = lambda: None,
        report_score: Callable[[OwnEvaluation], None] = lambda _: None,
        appraise: bool = True,
    ) -> None:
        self.learning = learning
        self.weights = weights
        self.contributions = contributions
        self._consensus = consensus
        self._key = key
        self._train = train
        self._appraise = appraise
        self._syncing = syncing
        self._announce = announce
        self._on_ready = on_ready
        self._report_score = report_score
        # on each verdict: "approved", "rejected", or "unverified" (not the rule's aggregate)
        self.report_verdict: Callable[[str], None] = lambda _result: None
        self._background = Background()
        self.model = ModelFollower(
            learning, lambda: consensus.state.model_hash, weights.get, patience
        )
        self.proposed: EncodedWeights | None = None  # pushed beside our proposal
        # (height, model hash, training): the next contribution, started at our precommit
        self._early: tuple[Height, Hash, asyncio.Task[EncodedWeights | None]] | None = None
        self._round: LearningRound | None = None  # the current model's round
        self._trained_for: Height | None = None  # the model height training last began for
        self._solo: tuple[Hash, EncodedWeights] | None = None  # solo: trained ahead, by base
        # this node's scores of proposed models on its vote set (bounded), and of the current
        self.verdict_budget = VerdictBudget(learning.layout.file_size)
        self._scores: dict[Hash, OwnEvaluation] = {}
        self.own_evaluation: OwnEvaluation | None = None
        self._check_timer: asyncio.TimerHandle | None = None

    # --- ABCI++ -------------------------------------------------------------------------------

    async def prepare_proposal(self, request: RequestProposal) -> ModelUpdate:
        """getValue()'s model update: trained (solo) or aggregated (aggregate), or none."""
        self.model.ensure()  # an early contribution may have moved the learner ahead
        ready = await self.model.ready()
        state = self._consensus.state
        unchanged = ModelUpdate(state.model_hash)
        # Updates need every survivor's approval when stake is tight; after two failed rounds at
        # a height, propose without one so the chain never stalls on learning.
        if not (
            self._train
            and ready
            and request.round < ROUNDS_BEFORE_PLAIN_BLOCKS
            and state.learning.is_training()
            and state.params.is_training_height(request.height)
        ):
            return unchanged
        try:
            if state.params.mode == Mode.SOLO:
                solo = self._solo
                if solo is None or solo[0] != state.model_hash:
                    return unchanged  # still training: this block keeps the model
                return await self._propose(solo[1])
            return await self._aggregate(state)
        except MLError as error:
            log.warning("no model update in this proposal: %s", error)
            return unchanged

    async def process_proposal(self, request: RequestVerdict) -> Verdict:
        """The ML verdict on a proposed block's weights, and this node's score of them; its
        duration sets how long later verdicts may take (``VerdictBudget``)."""
        contributions = len(request.block.contributions) + len(request.block.screened)
        self._consensus.set_verdict_budget(self.verdict_budget.compute_ms(contributions))
        started = time.monotonic()
        try:
            return await self._judge(request)
        finally:
            self.verdict_budget.observe(time.monotonic() - started)

    async def _judge(self, request: RequestVerdict) -> Verdict:
        self.model.ensure()  # an early contribution may have moved the learner ahead
        if not await self.model.ready():
            return Verdict(False)
        validators = self._consensus.validators
        member = validators.get_validator(compute_proposer_of_round(validators, request.round))
        model_hash = request.block.header.model_hash
        self.weights.publish(model_hash)
        me = validators.get_validator(self._key.address)
        plan = (
            None
            if member is None or me is None
            else compute_spread_plan(
                (v.endpoint for v in validators.validators), member.endpoint, me.endpoint
            )
        )
        data = await self.weights.get(
            model_hash, member.endpoint if member else None, plan, "proposal"
        )
        if data is None:
            self.weights.problems.report(
                "proposal", "unavailable", f"{model_hash.hex()[:12]}: no peer sent its weights"
            )
            return Verdict(False)
        state = self._consensus.state
        inputs: list[tuple[str, Path, int]] = []
        margin: float | None = None
        if state.params.mode == Mode.AGGREGATE:
            inputs = await self._fetch_contributions(state, request.block.contributions)
            if not await self._is_verified_aggregate(request.block, data, inputs):
                self.report_verdict("unverified")
                return Verdict(False)
            if is_contributor_quorum(state, request.block.contributions):
                margin = self.learning.learner.task.config.verified_margin
        try:
            decision = await self.learning.vote(data, margin)
        except MLError as error:
            self.weights.problems.report(
                "proposal", "bad_weights", f"{model_hash.hex()[:12]}: {error}"
            )
            self.report_verdict("rejected")
            return Verdict(False)
        self.report_verdict("approved" if decision.approve else "rejected")
        if not math.isfinite(decision.score):
            return Verdict(decision.approve)
        score = round(decision.score * SCORE_UNIT)
        if len(self._scores) >= 64:
            self._scores.pop(next(iter(self._scores)))
        self._scores[model_hash] = OwnEvaluation(score, decision.accuracy, decision.loss)
        appraising = decision.approve and self._appraise
        values = await self._appraise_contributions(request.block, inputs) if appraising else ()
        return Verdict(decision.approve, score, values)

    async def _is_verified_aggregate(
        self, block: Block, data: Path, inputs: list[tuple[str, Path, int]]
    ) -> bool:
        """True when the proposed weights are the aggregation rule's output from every
        contribution the block lists (§3.7): a proposer cannot propose weights of its own."""
        if len(inputs) != len(block.contributions):
            self.weights.problems.report(
                "contribution",
                "unavailable",
                f"{len(block.contributions) - len(inputs)} of the contributions listed by "
                f"proposal {block.header.model_hash.hex()[:12]}: no peer sent their weights",
            )
            return False
        population = len(self._consensus.state.validators.validators)
        if not await self.learning.check_aggregate(data, inputs, population):
            log.info(
                "proposed aggregate %s is not the rule's aggregate of its %d contributions",
                block.header.model_hash.hex()[:12],
                len(inputs),
            )
            return False
        return True

    async def _appraise_contributions(
        self, block: Block, inputs: list[tuple[str, Path, int]]
    ) -> tuple[int, ...]:
        """This node's appraisal of each of a block's contributions (fetched, in order), then of
        each one its proposer screened out, on its own data, in micro-units (the precommit's
        extension, §3.5); nothing when none, or when a screened-out one cannot be fetched."""
        if not inputs:
            return ()
        screened = await self._fetch_contributions(self._consensus.state, block.screened)
        if len(screened) != len(block.screened):
            log.info("contributions not appraised: a screened-out one's weights are missing")
            return ()
        try:
            values = await self.learning.appraise(inputs, screened)
        except MLError as error:
            log.warning("contributions not appraised: %s", error)
            return ()
        if not all(math.isfinite(v) for v in values):
            return ()
        return tuple(max(-MAX_SCORE, min(MAX_SCORE, round(v * SCORE_UNIT))) for v in values)

    def on_precommit(self, vote: Vote) -> None:
        """Optimistic execution: a block this node precommits almost always commits, so the next
        contribution starts training from its model now, overlapping the precommit round trip
        and the block write. It is announced only if that block is the one committed."""
        consensus = self._consensus
        if (
            vote.vote_type != VoteType.PRECOMMIT
            or vote.block_hash is None
            or (self._early is not None and self._early[0] == vote.height)
            or not self.is_contributor(consensus.state, Height(vote.height + 1))
        ):
            return
        block = consensus.get_block(vote.block_hash)
        if block is None or block.header.model_hash == consensus.state.model_hash:
            return  # a block that keeps the model: the contribution in flight stays valid
        model_hash = block.header.model_hash
        task = self._background.spawn(self._train_early(model_hash))
        self._early = (vote.height, model_hash, task)

    def on_commit(self, state: ChainState, commit_round: int = 0) -> None:
        """A written block (or the state at start): follow its model and, when the model is
        new, begin its learning round: train a contribution (aggregate) or an update ahead of
        this node's turn (solo).

        A block that keeps the model after failed rounds (``commit_round`` > 0) ends the
        attempt: the update proposed from these contributions was voted down (or its proposer
        was down), and the same contributions would make the same update again. Every validator
        sees the same block, so all of them train afresh (new batches) for a new attempt, and
        aggregate it without server momentum."""
        model_height = state.learning.model_height
        failed = (
            self._round is not None
            and self._round.model_height == model_height
            and model_height < state.height
            and commit_round > 0
        )
        if failed:
            self.contributions.forget(model_height)
            self.learning.forget_momentum()
            self._solo = None
            self._trained_for = None
        self.contributions.update(state)
        self.model.ensure()
        own = self._scores.get(state.model_hash)
        if own is not None:
            self.own_evaluation = own
            self._report_score(own)
        if failed or self._round is None or self._round.model_height != model_height:
            deadline = state.params.round_deadline / 1000
            self._round = LearningRound(model_height, time.monotonic(), deadline)
        previous = self._get_previous_model(state)
        if previous is not None and previous != self.learning.previous_hash:
            self._background.spawn(self._restore_previous(state.model_hash, previous))
        self.resume()

    def _get_previous_model(self, state: ChainState) -> Hash | None:
        """The chain's model before ``state``'s, when this node retains it and momentum is on."""
        retained = self.weights.retained
        if (
            self.learning.momentum_forgotten
            or state.learning.model_height == 0
            or len(retained) < 2
            or retained[-1] != state.model_hash
        ):
            return None
        return retained[-2]

    async def _restore_previous(self, model_hash: Hash, previous: Hash) -> None:
        """Give the learner the chain's last step once it holds ``model_hash`` (a restart or a
        catch-up left it without one, or with a step across skipped models), so that its
        aggregates and its checks of others' use the same server momentum (§3.7)."""
        if not await self.model.ready():
            return
        path = await self.weights.get(previous)
        if path is not None:
            await self.learning.restore_previous(previous, path, model_hash)

    def resume(self) -> None:
        """Train for the current model unless that has begun: at a commit, or once a catch-up
        that held it back is over."""
        state = self._consensus.state
        if self._trained_for != state.learning.model_height:
            if self.is_contributor(state, Height(state.height + 1)):
                self._trained_for = state.learning.model_height
                self._background.spawn(self._contribute(state))
            elif self.is_solo_learner(state):
                self._trained_for = state.learning.model_height
                self._background.spawn(self._train_solo(state))
        self.check_ready()

    def has_work(self) -> bool:
        """True when this node's learning round is ready to be proposed."""
        state = self._consensus.state
        if not (self._train and state.learning.is_training() and self._consensus.is_validator()):
            return False
        learning_round = self._round
        if state.params.mode == Mode.SOLO:
            # Only the height's proposer has anything to propose; the others follow its proposal,
            # or wake at the deadline when it is down (and a later round's proposer proposes).
            trained = self._solo is not None and self._solo[0] == state.model_hash
            proposer = compute_proposer_of_round(state.validators, 0) == self._key.address
            late = learning_round is not None and learning_round.is_past_deadline(time.monotonic())
            return trained and (proposer or late)
        if learning_round is None or learning_round.model_height != state.learning.model_height:
            return False
        return learning_round.is_ready(self._get_contributors(state), time.monotonic())

    def check_ready(self) -> None:
        """Tell the node when the round is ready; else look again when the grace or the
        deadline would make it so."""
        if self._check_timer is not None:
            self._check_timer.cancel()
            self._check_timer = None
        if self.has_work():
            self._on_ready()
            return
        if log.isEnabledFor(logging.DEBUG):
            state = self._consensus.state
            contributors = self._get_contributors(state)
            log.debug(
                "learning round of model %d not ready: %d contributions in, %d awaited",
                state.learning.model_height,
                len(contributors.arrived),
                len(contributors.awaited),
            )
        learning_round = self._round
        if learning_round is not None and self._consensus.state.learning.is_training():
            delay = learning_round.get_next_check(time.monotonic())
            if delay > 0:
                loop = asyncio.get_running_loop()
                self._check_timer = loop.call_later(delay, self.check_ready)

    def get_inline_weights(self, model_hash: Hash) -> bytes:
        """The weights to push beside our proposal naming ``model_hash``, when we made them."""
        proposed = self.proposed
        ours = proposed is not None and proposed.weights_hash == model_hash
        return compute_inline_weights(proposed) if ours else b""

    def offer_weights(self, weights_hash: Hash, data: bytes) -> None:
        """Weights pushed beside a proposal whose signature checked."""
        self.weights.offer(weights_hash, data)

    def receive_contribution(self, contribution: Contribution, weights: bytes = b"") -> None:
        """A contribution from a peer, perhaps with its weights: checked (signature first) by
        the state transition's rule, kept when it is for the current model or the next."""
        state = self._consensus.state
        if not self.contributions.receive(state, contribution):
            return
        if weights:
            self.weights.offer(contribution.weights_hash, weights)
        elif self._consensus.is_validator():  # fetched now, not when a block lists it
            member = state.validators.get_validator(contribution.validator)
            maker = member.endpoint if member is not None else None
            self.weights.prefetch(contribution.weights_hash, maker, "contribution")
        self.check_ready()

    # --- helpers ------------------------------------------------------------------------------

    def is_contributor(self, state: ChainState, height: Height) -> bool:
        """True when this node trains a contribution for the block at ``height``."""
        return state.params.mode == Mode.AGGREGATE and self._may_train(state, height)

    def is_solo_learner(self, state: ChainState) -> bool:
        """True when this node trains solo updates ahead of its turn."""
        return state.params.mode == Mode.SOLO and self._may_train(state, Height(state.height + 1))

    def _may_train(self, state: ChainState, height: Height) -> bool:
        """True when this validator trains for a block at ``height`` (at the tip, training on)."""
        return (
            self._train
            and state.learning.is_training()
            and state.params.is_training_height(height)
            and self._consensus.is_validator()
            and not self._syncing()
        )

    def _get_contributors(self, state: ChainState) -> Contributors:
        """Who contributed to the current model, and whom the round awaits."""
        wanted = {v.address for v in state.validators.validators}
        arrived = set(self.contributions.get(state.learning.model_height)) & wanted
        awaited = compute_awaited_contributors(
            wanted, self.contributions.last_contributors, self._key.address
        )
        return Contributors.of(arrived, awaited, state.validators, state.params.threshold)

    def weights_in_use(self) -> set[Hash]:
        """Weights this height's work still needs (kept from pruning), and the models the
        learner holds."""
        in_use = set(self.contributions.iter_weights_hashes())
        if self.proposed is not None:
            in_use.add(self.proposed.weights_hash)
        in_use.add(self.learning.current_hash())  # the learner reads its models from their files
        if self.learning.previous_hash is not None:
            in_use.add(self.learning.previous_hash)
        return in_use

    async def _propose(self, weights: EncodedWeights) -> ModelUpdate:
        self.weights.publish(weights.weights_hash)
        self.proposed = weights
        return ModelUpdate(weights.weights_hash)

    async def _aggregate(self, state: ChainState) -> ModelUpdate:
        """Aggregate the contributions to the current model, once the round may be proposed
        (``LearningRound.may_aggregate``); else keep the model."""
        learning_round = self._round
        contributors = self._get_contributors(state)
        if learning_round is None or not learning_round.may_aggregate(
            contributors, time.monotonic()
        ):
            return ModelUpdate(state.model_hash)
        arrived = self.contributions.get(state.learning.model_height)
        pool = [c for address, c in arrived.items() if address in contributors.arrived]
        if self.learning.is_poisoner:  # testing: the best aggregate a poisoner can get verified
            pool = compute_attack_listing(
                pool,
                lambda c: c.validator == self._key.address,
                lambda listed: is_contributor_quorum(state, listed),
            )
        inputs = await self._fetch_contributions(state, pool)
        if not inputs:
            return ModelUpdate(state.model_hash)
        weights, used_ids = await self.learning.aggregate(inputs, len(state.validators.validators))
        update = await self._propose(weights)
        fetched = {contributor for contributor, _, _ in inputs}
        used = tuple(c for c in pool if c.validator.hex() in used_ids)
        screened = tuple(
            c for c in pool if c.validator.hex() in fetched and c.validator.hex() not in used_ids
        )[: max(0, state.params.max_contributions - len(used))]  # the block's limit counts both
        return ModelUpdate(update.model_hash, used, screened)

    async def _fetch_contributions(
        self, state: ChainState, contributions: Sequence[Contribution]
    ) -> list[tuple[str, Path, int]]:
        """(contributor id, weights, samples) of each of ``contributions`` whose weights could
        be fetched, in order: what the learning worker aggregates or appraises."""
        fetched = await asyncio.gather(
            *(self._get_contribution_weights(state, c) for c in contributions)
        )
        return [
            (c.validator.hex(), path, c.samples)
            for c, path in zip(contributions, fetched, strict=True)
            if path is not None
        ]

    async def _get_contribution_weights(
        self, state: ChainState, contribution: Contribution
    ) -> Path | None:
        member = state.validators.get_validator(contribution.validator)
        return await self.weights.get(
            contribution.weights_hash, member.endpoint if member else None, None, "contribution"
        )

    async def _train_early(self, model_hash: Hash) -> EncodedWeights | None:
        path = await self.weights.get(model_hash)
        if path is None:
            return None
        try:
            return await self.learning.propose_from(path, model_hash)
        except MLError as error:
            log.debug("early contribution failed: %s", error)
            return None

    async def _train_solo(self, state: ChainState) -> None:
        """Solo mode: train an update from the new global model ahead of this node's turn."""
        if not await self._follow_model(state):
            return
        try:
            weights = await self.learning.propose()
        except MLError as error:
            log.warning("no solo update from this model: %s", error)
            return
        if self._consensus.state.model_hash == state.model_hash:
            self._solo = (state.model_hash, weights)
            self.check_ready()

    async def _contribute(self, state: ChainState) -> None:
        """Train from the new global model and announce a signed contribution."""
        weights = await self._take_early(state)
        if weights is None:
            if not await self._follow_model(state):
                return
            try:
                weights = await self.learning.propose()
            except MLError as error:
                log.warning("no contribution this round: %s", error)
                return
        contribution = self._sign_contribution(state, weights.weights_hash)
        if self._is_current_model(state):
            self.contributions.add(contribution)
            self._announce(contribution, weights)
            self.check_ready()

    async def _follow_model(self, state: ChainState) -> bool:
        """Wait until the learner holds ``state``'s model (large weights may take longer than
        one patience); False once the chain's model has moved on."""
        while self._is_current_model(state):
            self.model.ensure()
            if await self.model.ready():
                return self._is_current_model(state)
        return False

    def _is_current_model(self, state: ChainState) -> bool:
        """True while the chain's model is still the one ``state`` names."""
        return self._consensus.state.learning.model_height == state.learning.model_height

    async def _take_early(self, state: ChainState) -> EncodedWeights | None:
        """The early contribution, when it was trained from ``state``'s model."""
        early = self._early
        if early is None or (early[0], early[1]) != (state.height, state.model_hash):
            return None
        try:
            return await early[2]
        except Exception as error:  # the early run is an optimisation: train the usual way
            log.debug("early contribution unusable: %s", error)
            return None

    def _sign_contribution(self, state: ChainState, weights_hash: Hash) -> Contribution:
        unsigned = Contribution(
            state.chain_id,
            state.learning.model_height,
            self._key.address,
            weights_hash,
            self.learning.learner.samples,
            Signature(b""),
        )
        return replace(unsigned, signature=self._key.sign(unsigned.sign_bytes()))

    def close(self) -> None:
        """Stop training and following."""
        if self._check_timer is not None:
            self._check_timer.cancel()
        self._background.cancel()
        self.model.close()
