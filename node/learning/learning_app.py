"""The learning application behind consensus, in the shape of ABCI++.

- ``prepare_proposal``: a proposer's model update (``ProposalBuilder``): its own, trained ahead
  (solo), or aggregated from the validators' contributions once the round is ready (aggregate);
  else none.
- ``process_proposal``: the ML half of valid(v) (``ProposalJudge``): fetch the proposed weights,
  check their hash, in aggregate mode re-compute the aggregate from the listed contributions
  (§3.7), and score the weights on the private vote set (the score rides on the precommit).
- ``on_precommit``: optimistic execution (``LocalTrainer``): start training the next
  contribution from a block this node precommits.
- ``on_commit``: follow the committed model and, when it changed, begin its learning round:
  train (an aggregate-mode contribution, or a solo update ahead of this node's turn) for as long
  as training needs: plain blocks in between do not invalidate the work (docs/protocol.md §3.2).
- ``has_work``: a learning round is ready to be proposed (wakes a chain that makes no empty
  blocks).

The application itself keeps the current model's learning round and who contributed to it, and
hands each of the verbs above to the part that does it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from learnchain.consensus.crypto import PrivateKey
from learnchain.consensus.events import RequestProposal, RequestVerdict
from learnchain.consensus.messages import Contribution, Vote
from learnchain.consensus.params import Mode
from learnchain.consensus.state import ChainState
from learnchain.consensus.types import Hash
from learnchain.consensus.validators import compute_proposer_of_round
from learnchain.ml.aggregate import get_aggregation_rule
from learnchain.node.learning.app_interface import (
    ConsensusView,
    ModelUpdate,
    OwnEvaluation,
    Verdict,
)
from learnchain.node.learning.contribution_pool import (
    ContributionPool,
    compute_awaited_contributors,
)
from learnchain.node.learning.learning_round import Contributors, LearningRound
from learnchain.node.learning.local_trainer import LocalTrainer
from learnchain.node.learning.model_follower import ModelFollower
from learnchain.node.learning.proposal_builder import ProposalBuilder
from learnchain.node.learning.proposal_judge import ProposalJudge
from learnchain.node.learning.speculation import SPECULATION_MIN_BYTES, Speculator
from learnchain.node.libs.background import Background
from learnchain.node.store.weights_store import EncodedWeights
from learnchain.node.training.learning_worker import LearningWorker
from learnchain.node.weights.weights_pool import WeightsPool

log = logging.getLogger("learnchain.learning")


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
        rule = get_aggregation_rule(learning.learner.task.config.aggregation)
        learning.scores_contributions = appraise or rule.screens
        self.weights = weights
        self.contributions = contributions
        self._consensus = consensus
        self._key = key
        self._on_ready = on_ready
        self._report_score = report_score
        self._background = Background()
        self.model = ModelFollower(
            learning, lambda: consensus.state.model_hash, weights.get, patience
        )
        self.trainer = LocalTrainer(
            learning,
            weights,
            contributions,
            consensus,
            self.model,
            key,
            train,
            syncing,
            announce,
            self.check_ready,
        )
        self.speculator = Speculator(learning, weights, appraise, contributions.get_arrival)
        self.judge = ProposalJudge(
            learning,
            weights,
            consensus,
            self.model,
            key.address,
            appraise,
            lambda model_hash: self.builder.is_own_proposal(model_hash),
            self.speculator,
            contributions.get_arrival,
        )
        self.builder = ProposalBuilder(
            learning,
            weights,
            contributions,
            self.model,
            self.trainer,
            key.address,
            lambda: self._round,
            self._get_contributors,
            self.judge.budget,
        )
        self._round: LearningRound | None = None  # the current model's round
        self.own_evaluation: OwnEvaluation | None = None  # of the current model
        self._check_timer: asyncio.TimerHandle | None = None

    @property
    def report_verdict(self) -> Callable[[str], None]:
        """Called on each verdict: "approved", "rejected" or "unverified"."""
        return self.judge.report_verdict

    @report_verdict.setter
    def report_verdict(self, report: Callable[[str], None]) -> None:
        self.judge.report_verdict = report

    # --- ABCI++ -------------------------------------------------------------------------------

    async def prepare_proposal(self, request: RequestProposal) -> ModelUpdate:
        """getValue()'s model update: trained (solo) or aggregated (aggregate), or none."""
        return await self.builder.prepare_proposal(request, self._consensus.state)

    async def process_proposal(self, request: RequestVerdict) -> Verdict:
        """The ML verdict on a proposed block's weights, and this node's score of them."""
        return await self.judge.process_proposal(request)

    def on_precommit(self, vote: Vote) -> None:
        """Optimistic execution: start training the next contribution from a block this node
        precommits (announced only if that block is the one committed)."""
        self.trainer.on_precommit(vote)

    def on_commit(self, state: ChainState, commit_round: int = 0) -> None:
        """A written block (or the state at start): follow its model and, when the model is
        new, begin its learning round: train a contribution (aggregate) or an update ahead of
        this node's turn (solo).

        A block that keeps the model after failed rounds (``commit_round`` > 0) ends the
        attempt: the update proposed from these contributions was voted down (or its proposer
        was down), and the same contributions would make the same update again. Every validator
        sees the same block, so all of them train afresh (new batches) for a new attempt, carrying
        what their voted-down contributions' encodings dropped decayed once more, and aggregate
        it without server momentum."""
        model_height = state.learning.model_height
        failed = (
            self._round is not None
            and self._round.model_height == model_height
            and model_height < state.height
            and commit_round > 0
        )
        if failed:
            self.contributions.forget(model_height)
            self.learning.forget_attempt()
            self.trainer.forget()
        self.contributions.update(state)
        self.model.ensure()
        own = self.judge.get_own_evaluation(state.model_hash)
        if own is not None:
            self.own_evaluation = own
            self._report_score(own)
        if failed or self._round is None or self._round.model_height != model_height:
            deadline = state.params.round_deadline / 1000
            self._round = LearningRound(model_height, time.monotonic(), deadline)
        # a proposer aggregates the round's contributions (one per validator at most) for as long
        # as this node takes to judge such a proposal: wait for it that long
        validators = len(state.validators.validators)
        self._consensus.set_learning_budget(self.judge.budget.compute_ms(validators))
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
        self.trainer.resume()
        self.check_ready()

    # --- the learning round -----------------------------------------------------------------

    def has_work(self) -> bool:
        """True when this node's learning round is ready to be proposed."""
        state = self._consensus.state
        if not (
            self.trainer.train and state.learning.is_training() and self._consensus.is_validator()
        ):
            return False
        learning_round = self._round
        if state.params.mode == Mode.SOLO:
            # Only the height's proposer has anything to propose; the others follow its proposal,
            # or wake at the deadline when it is down (and a later round's proposer proposes).
            solo = self.trainer.solo
            trained = solo is not None and solo[0] == state.model_hash
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
            self._speculate()
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

    def _speculate(self) -> None:
        """A ready round with every awaited contribution in: unless this node proposes it, aggregate
        and appraise them now, while the proposer aggregates and spreads its proposal
        (node/learning/speculation.py). Once per model, for a model large enough that re-computing
        it matters or whose contributions travel encoded (it need not travel at all), and not for a
        rule that screens (its listing is the proposer's own choice)."""
        state = self._consensus.state
        contributors = self._get_contributors(state)
        if (
            state.params.mode != Mode.AGGREGATE
            or (
                self.learning.layout.file_size < SPECULATION_MIN_BYTES
                and self.learning.codec.sends_weights  # else computing it saves its transfer
            )
            or not contributors.is_complete()
            or self.speculator.is_started_for(state.learning.model_height)
            or compute_proposer_of_round(state.validators, 0) == self._key.address
            or get_aggregation_rule(self.learning.learner.task.config.aggregation).screens
        ):
            return
        arrived = self.contributions.get(state.learning.model_height)
        pool = [c for address, c in arrived.items() if address in contributors.arrived]
        if pool:
            self.speculator.start(state, pool)

    def _get_contributors(self, state: ChainState) -> Contributors:
        """Who contributed to the current model, and whom the round awaits."""
        wanted = {v.address for v in state.validators.validators}
        arrived = set(self.contributions.get(state.learning.model_height)) & wanted
        awaited = compute_awaited_contributors(
            wanted, self.contributions.last_contributors, self._key.address
        )
        return Contributors.of(arrived, awaited, state.validators, state.params.threshold)

    # --- what arrives, and what stays ---------------------------------------------------------

    def get_inline_weights(self, model_hash: Hash) -> bytes:
        """The weights to push beside our proposal naming ``model_hash``, when we made them."""
        return self.builder.get_inline_weights(model_hash)

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
        if self._consensus.is_validator():  # fetched and measured now, not when a block lists it
            self._background.spawn(self._prepare(contribution))
        self.check_ready()

    async def _prepare(self, contribution: Contribution) -> None:
        """Fetch a contribution's weights as soon as it is announced and, when it was trained
        from the current model, score and measure it while the round still trains."""
        state = self._consensus.state
        member = state.validators.get_validator(contribution.validator)
        maker = member.endpoint if member is not None else None
        path = await self.weights.get(contribution.weights_hash, maker, None, "contribution")
        if path is not None and contribution.height == self._consensus.state.learning.model_height:
            await self.learning.prepare(path)

    def weights_in_use(self) -> set[Hash]:
        """Weights this height's work still needs (kept from pruning), and the models the
        learner holds."""
        in_use = set(self.contributions.iter_weights_hashes())
        if self.builder.proposed is not None:
            in_use.add(self.builder.proposed.weights_hash)
        in_use.add(self.learning.current_hash())  # the learner reads its models from their files
        in_use |= self.speculator.in_use()
        if self.learning.previous_hash is not None:
            in_use.add(self.learning.previous_hash)
        return in_use

    def close(self) -> None:
        """Stop training and following."""
        if self._check_timer is not None:
            self._check_timer.cancel()
        self._background.cancel()
        self.speculator.close()
        self.trainer.close()
        self.model.close()
