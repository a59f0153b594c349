"""The ML half of valid(v) (ABCI++'s ProcessProposal): fetch the proposed weights, check their
hash, in aggregate mode re-compute the aggregate from the listed contributions (§3.7), score the
weights on the private vote set, and appraise the contributions (§3.5); the score and the values
ride on the precommit. How long a verdict takes sets how long the next may (``LearningBudget``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

from learnchain.consensus.events import RequestVerdict
from learnchain.consensus.messages import MAX_SCORE, Block, Contribution
from learnchain.consensus.params import SCORE_UNIT, Mode
from learnchain.consensus.types import Address, Hash
from learnchain.consensus.validators import compute_proposer_of_round
from learnchain.ml.errors import MLError
from learnchain.node.learning.app_interface import (
    ConsensusView,
    ContributionInput,
    OwnEvaluation,
    Verdict,
    fetch_contribution_weights,
    is_contributor_quorum,
)
from learnchain.node.learning.learning_budget import LearningBudget
from learnchain.node.learning.model_follower import ModelFollower
from learnchain.node.learning.speculation import Speculator
from learnchain.node.training.learning_worker import LearningWorker
from learnchain.node.training.training_process import TrainingFailed
from learnchain.node.weights.weights_parts import SpreadPlan, compute_spread_plan
from learnchain.node.weights.weights_pool import WeightsPool

RECENT_SCORES = 64  # this node's scores of proposed models kept for the commit that follows
log = logging.getLogger("learnchain.learning")


class ProposalJudge:
    """This validator's verdicts on proposed model updates."""

    def __init__(
        self,
        learning: LearningWorker,
        weights: WeightsPool,
        consensus: ConsensusView,
        model: ModelFollower,
        address: Address,
        appraise: bool,
        is_own_proposal: Callable[[Hash], bool] = lambda _model_hash: False,
        speculator: Speculator | None = None,
        get_arrival: Callable[[Contribution], float] = lambda _contribution: 0.0,
    ) -> None:
        self.learning = learning
        self.weights = weights
        self._consensus = consensus
        self._model = model
        self._address = address
        self._appraise = appraise
        self._is_own_proposal = is_own_proposal
        self._speculator = speculator
        self._get_arrival = get_arrival  # when each contribution reached this node (copies)
        self.budget = LearningBudget(learning.layout.file_size)
        # on each verdict: "approved", "rejected", or "unverified" (not the rule's aggregate)
        self.report_verdict: Callable[[str], None] = lambda _result: None
        self._scores: dict[Hash, OwnEvaluation] = {}  # this node's scores of proposed models
        self._computed: Hash | None = None  # the last proposed model computed here (§3.8)

    def get_own_evaluation(self, model_hash: Hash) -> OwnEvaluation | None:
        """This node's evaluation of a model it judged (recently), if any."""
        return self._scores.get(model_hash)

    async def process_proposal(self, request: RequestVerdict) -> Verdict:
        """The ML verdict on a proposed block's weights, and this node's score of them; its
        duration sets how long later verdicts may take."""
        contributions = len(request.block.contributions) + len(request.block.screened)
        self._consensus.set_learning_budget(self.budget.compute_ms(contributions))
        started = time.monotonic()
        try:
            return await self._judge(request)
        finally:
            self.budget.observe(time.monotonic() - started)

    def _compute_plan(self, round_: int) -> tuple[str | None, SpreadPlan | None]:
        """The proposal's maker's endpoint, and this validator's part in spreading its model."""
        validators = self._consensus.validators
        member = validators.get_validator(compute_proposer_of_round(validators, round_))
        me = validators.get_validator(self._address)
        if member is None:
            return None, None
        if me is None:
            return member.endpoint, None
        endpoints = (v.endpoint for v in validators.validators)
        return member.endpoint, compute_spread_plan(endpoints, member.endpoint, me.endpoint)

    async def _judge(self, request: RequestVerdict) -> Verdict:
        self._model.ensure()  # an early contribution may have moved the learner ahead
        if not await self._model.ready():
            return Verdict(False)
        model_hash = request.block.header.model_hash
        self.weights.publish(model_hash)
        state = self._consensus.state
        aggregate = state.params.mode == Mode.AGGREGATE
        speculation = (
            await self._speculator.settle(request.block, state.learning.model_height)
            if aggregate and self._speculator is not None
            else None
        )
        path: Path | None = None
        if speculation is not None:  # this node computed this very aggregate: no fetch needed
            path = speculation.weights.path
        elif (
            aggregate
            and not self.learning.codec.sends_weights
            and not self._is_own_proposal(model_hash)
        ):
            path = await self._compute_aggregate(request.block)
        if path is None:
            maker, plan = self._compute_plan(request.round)
            path = await self.weights.get(model_hash, maker, plan, "proposal")
        if path is None:
            self.weights.problems.report(
                "proposal", "unavailable", f"{model_hash.hex()[:12]}: no peer sent its weights"
            )
            return Verdict(False)
        inputs: list[ContributionInput] = []
        margin: float | None = None
        if aggregate:
            contributions = request.block.contributions
            inputs = await fetch_contribution_weights(self.weights, state, contributions)
            # this node computed that aggregate itself: as the proposer, or ahead of it
            known = self._is_own_proposal(model_hash) or speculation is not None
            known = known or self._computed == model_hash
            if not known and not await self._is_verified_aggregate(request.block, path, inputs):
                self.report_verdict("unverified")
                return Verdict(False)
            if is_contributor_quorum(state, contributions):
                margin = self.learning.learner.task.config.verified_margin
        try:
            decision = await self.learning.vote(path, margin)
        except TrainingFailed:  # this node's learner process failed, not the proposal: counted
            return Verdict(False)
        except MLError as error:
            detail = f"{model_hash.hex()[:12]}: {error}"
            self.weights.problems.report("proposal", "bad_weights", detail)
            self.report_verdict("rejected")
            return Verdict(False)
        self.report_verdict("approved" if decision.approve else "rejected")
        if not math.isfinite(decision.score):
            return Verdict(decision.approve)
        score = round(decision.score * SCORE_UNIT)
        if len(self._scores) >= RECENT_SCORES:
            self._scores.pop(next(iter(self._scores)))
        self._scores[model_hash] = OwnEvaluation(score, decision.accuracy, decision.loss)
        values: tuple[int, ...] = ()
        keeps_reputation = self._consensus.state.params.keeps_reputation
        if decision.approve and self._appraise:
            if speculation is not None and not keeps_reputation:  # appraised meanwhile
                contributions = request.block.contributions
                values = to_micro_units([speculation.values[c.validator] for c in contributions])
            else:
                values = await self._appraise_contributions(request.block, inputs)
        return Verdict(decision.approve, score, values)

    async def _compute_aggregate(self, block: Block) -> Path | None:
        """The block's model computed here from the updates it lists, when they decode to it
        (§3.8: contributions travel encoded, so the model need not travel at all); None when
        they do not, or one cannot be had (the model is then fetched)."""
        state = self._consensus.state
        inputs = await fetch_contribution_weights(self.weights, state, block.contributions)
        if block.screened or len(inputs) != len(block.contributions):
            return None
        population = len(state.validators.validators)
        try:
            weights, used = await self.learning.aggregate(inputs, population)
            if weights.weights_hash != block.header.model_hash and self.learning.has_momentum:
                # a proposer that restarted, or an attempt after one voted down, has none (§3.7)
                weights, used = await self.learning.aggregate(inputs, population, momentum=False)
        except MLError:
            return None
        if weights.weights_hash != block.header.model_hash or len(used) != len(inputs):
            log.info(
                "computed %s from the %d updates block model %s lists: fetching the model",
                weights.weights_hash.hex()[:12],
                len(used),
                block.header.model_hash.hex()[:12],
            )
            return None
        self._computed = weights.weights_hash
        return weights.path

    async def _is_verified_aggregate(
        self, block: Block, path: Path, inputs: list[ContributionInput]
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
        if not await self.learning.check_aggregate(path, inputs, population):
            log.info(
                "proposed aggregate %s is not the rule's aggregate of its %d contributions",
                block.header.model_hash.hex()[:12],
                len(inputs),
            )
            return False
        return True

    async def _appraise_contributions(
        self, block: Block, inputs: list[ContributionInput]
    ) -> tuple[int, ...]:
        """This node's appraisal of each of a block's contributions (fetched, in order), then of
        each one its proposer screened out, on its own data, in micro-units (the precommit's
        extension, §3.5), followed on a chain that keeps reputation by their reputation values
        (§3.9); nothing when none, or when a screened-out one cannot be fetched."""
        if not inputs:
            return ()
        state = self._consensus.state
        screened = await fetch_contribution_weights(self.weights, state, block.screened)
        if len(screened) != len(block.screened):
            log.info("contributions not appraised: a screened-out one's weights are missing")
            return ()
        try:
            reputation = state.params.keeps_reputation  # and the reputation values (§3.9)
            arrival = [self._get_arrival(c) for c in (*block.contributions, *block.screened)]
            height = block.header.height
            values = await self.learning.appraise(
                inputs,
                screened,
                reputation,
                arrival,
                is_wanted=lambda: self._consensus.state.height < height,
            )
        except MLError as error:
            log.warning("contributions not appraised: %s", error)
            return ()
        return to_micro_units(values)


def to_micro_units(values: list[float]) -> tuple[int, ...]:
    """Contribution values as a precommit carries them (nothing when one is not finite)."""
    if not all(math.isfinite(v) for v in values):
        return ()
    return tuple(max(-MAX_SCORE, min(MAX_SCORE, round(v * SCORE_UNIT))) for v in values)
