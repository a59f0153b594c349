"""A proposer's model update (ABCI++'s PrepareProposal, getValue() of Algorithm 1): its own
update trained ahead (solo), or the aggregate of the validators' contributions once the round may
be proposed (aggregate, §3.2); else none, and the block keeps the model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from learnchain.consensus.events import RequestProposal
from learnchain.consensus.params import Mode
from learnchain.consensus.state import ChainState, get_reputation_exclusions
from learnchain.consensus.types import Address, Hash
from learnchain.ml.adversaries import compute_attack_listing
from learnchain.ml.errors import MLError
from learnchain.node.learning.app_interface import (
    ModelUpdate,
    fetch_contribution_weights,
    is_contributor_quorum,
)
from learnchain.node.learning.contribution_pool import ContributionPool
from learnchain.node.learning.learning_budget import LearningBudget
from learnchain.node.learning.learning_round import Contributors, LearningRound
from learnchain.node.learning.local_trainer import LocalTrainer
from learnchain.node.learning.model_follower import ModelFollower
from learnchain.node.p2p.peer_manager import compute_inline_weights
from learnchain.node.store.weights_store import EncodedWeights
from learnchain.node.training.learning_worker import LearningWorker
from learnchain.node.weights.weights_pool import WeightsPool

# Updates need every survivor's approval when stake is tight; after two failed rounds at a
# height, propose without one so the chain never stalls on learning.
ROUNDS_BEFORE_PLAIN_BLOCKS = 2
log = logging.getLogger("learnchain.learning")


class ProposalBuilder:
    """What this validator proposes when it is the round's proposer."""

    def __init__(
        self,
        learning: LearningWorker,
        weights: WeightsPool,
        contributions: ContributionPool,
        model: ModelFollower,
        trainer: LocalTrainer,
        address: Address,
        get_round: Callable[[], LearningRound | None],
        get_contributors: Callable[[ChainState], Contributors],
        budget: LearningBudget,
    ) -> None:
        self.learning = learning
        self.weights = weights
        self.contributions = contributions
        self._model = model
        self._trainer = trainer
        self._address = address
        self._get_round = get_round
        self._get_contributors = get_contributors
        self.budget = budget
        self.proposed: EncodedWeights | None = None  # pushed beside our proposal
        self.proposed_aggregate = False  # it is an aggregate that validators compute themselves

    async def prepare_proposal(self, request: RequestProposal, state: ChainState) -> ModelUpdate:
        """getValue()'s model update: trained (solo) or aggregated (aggregate), or none."""
        self._model.ensure()  # an early contribution may have moved the learner ahead
        ready = await self._model.ready()
        unchanged = ModelUpdate(state.model_hash)
        if not (
            self._trainer.train
            and ready
            and request.round < ROUNDS_BEFORE_PLAIN_BLOCKS
            and state.learning.is_training()
            and state.params.is_training_height(request.height)
        ):
            return unchanged
        try:
            if state.params.mode == Mode.SOLO:
                solo = self._trainer.solo
                if solo is None or solo[0] != state.model_hash:
                    return unchanged  # still training: this block keeps the model
                return self._propose(solo[1])
            return await self._aggregate(state)
        except MLError as error:
            log.warning("no model update in this proposal: %s", error)
            return unchanged

    def is_own_proposal(self, model_hash: Hash) -> bool:
        """True when ``model_hash`` names the update this node last proposed (made here by the
        rule from its listed contributions: nothing to re-compute)."""
        return self.proposed is not None and self.proposed.weights_hash == model_hash

    def get_inline_weights(self, model_hash: Hash) -> bytes:
        """The weights to push beside our proposal naming ``model_hash``, when we made them."""
        proposed = self.proposed
        ours = proposed is not None and proposed.weights_hash == model_hash
        # with a codec, validators compute an aggregate from the updates they hold (§3.8)
        computed = self.proposed_aggregate and not self.learning.codec.sends_weights
        return compute_inline_weights(proposed) if ours and not computed else b""

    def _propose(self, weights: EncodedWeights, aggregate: bool = False) -> ModelUpdate:
        self.weights.publish(weights.weights_hash)
        self.proposed_aggregate = aggregate
        self.proposed = weights
        return ModelUpdate(weights.weights_hash)

    async def _aggregate(self, state: ChainState) -> ModelUpdate:
        """Aggregate the contributions to the current model, once the round may be proposed
        (``LearningRound.may_aggregate``); else keep the model."""
        learning_round = self._get_round()
        contributors = self._get_contributors(state)
        if learning_round is None or not learning_round.may_aggregate(
            contributors, time.monotonic()
        ):
            return ModelUpdate(state.model_hash)
        arrived = self.contributions.get(state.learning.model_height)
        pool = [c for address, c in arrived.items() if address in contributors.arrived]
        # the lowest reputations stay out of the aggregate, still named for appraisal (§3.9)
        left_out = get_reputation_exclusions(state) if state.params.keeps_reputation else set()
        candidates = [c for c in pool if c.validator not in left_out]
        if self.learning.is_poisoner:  # testing: the best aggregate a poisoner can get verified
            candidates = compute_attack_listing(
                candidates,
                lambda c: c.validator == self._address,
                lambda listed: is_contributor_quorum(state, listed),
            )
            pool = [*candidates, *(c for c in pool if c.validator in left_out)]
        inputs = await fetch_contribution_weights(self.weights, state, candidates)
        if not inputs:
            return ModelUpdate(state.model_hash)
        started = time.monotonic()
        weights, used_ids = await self.learning.aggregate(inputs, len(state.validators.validators))
        self.budget.observe(time.monotonic() - started)
        update = self._propose(weights, aggregate=True)
        fetched = {contributor for contributor, _, _ in inputs}
        used = tuple(c for c in pool if c.validator.hex() in used_ids)
        screened = tuple(
            c
            for c in pool
            if c.validator in left_out
            or (c.validator.hex() in fetched and c.validator.hex() not in used_ids)
        )[: max(0, state.params.max_contributions - len(used))]  # the block's limit counts both
        return ModelUpdate(update.model_hash, used, screened)
