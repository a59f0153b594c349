"""This validator's training for the chain: a signed contribution to each new model (aggregate
mode) or an update trained ahead of its turn (solo), for as long as training needs; plain blocks
in between do not invalidate the work (docs/protocol.md §3.2). With optimistic execution the next
contribution starts at this node's precommit for a block that changes the model, overlapping the
precommit round trip and the block write; it is announced only if that block is committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace

from learnchain.consensus.crypto import PrivateKey
from learnchain.consensus.messages import Contribution, Vote
from learnchain.consensus.params import Mode
from learnchain.consensus.state import ChainState
from learnchain.consensus.types import Hash, Height, Signature, VoteType
from learnchain.ml.errors import MLError
from learnchain.node.learning.app_interface import ConsensusView
from learnchain.node.learning.contribution_pool import ContributionPool
from learnchain.node.learning.model_follower import ModelFollower
from learnchain.node.libs.background import Background
from learnchain.node.store.weights_store import EncodedWeights
from learnchain.node.training.learning_worker import LearningWorker
from learnchain.node.weights.weights_pool import WeightsPool

COPYCAT_POLL_SECONDS = 0.1
log = logging.getLogger("learnchain.learning")


class LocalTrainer:
    """Trains this validator's contributions and solo updates from the chain's model."""

    def __init__(
        self,
        learning: LearningWorker,
        weights: WeightsPool,
        contributions: ContributionPool,
        consensus: ConsensusView,
        model: ModelFollower,
        key: PrivateKey,
        train: bool,
        syncing: Callable[[], bool],  # catching up: train once at the tip
        announce: Callable[[Contribution, EncodedWeights], None],
        on_trained: Callable[[], None],
    ) -> None:
        self.learning = learning
        self.weights = weights
        self.contributions = contributions
        self._consensus = consensus
        self._model = model
        self._key = key
        self.train = train
        self._syncing = syncing
        self._announce = announce
        self._on_trained = on_trained
        self._background = Background()
        # (height, model hash, training): the next contribution, started at our precommit
        self._early: tuple[Height, Hash, asyncio.Task[EncodedWeights | None]] | None = None
        self._trained_for: Height | None = None  # the model height training last began for
        self.solo: tuple[Hash, EncodedWeights] | None = None  # solo: trained ahead, by base

    def is_contributor(self, state: ChainState, height: Height) -> bool:
        """True when this node trains a contribution for the block at ``height``."""
        return state.params.mode == Mode.AGGREGATE and self._may_train(state, height)

    def is_solo_learner(self, state: ChainState) -> bool:
        """True when this node trains solo updates ahead of its turn."""
        return state.params.mode == Mode.SOLO and self._may_train(state, Height(state.height + 1))

    def _may_train(self, state: ChainState, height: Height) -> bool:
        """True when this validator trains for a block at ``height`` (at the tip, training on)."""
        return (
            self.train
            and state.learning.is_training()
            and state.params.is_training_height(height)
            and self._consensus.is_validator()
            and not self._syncing()
        )

    def forget(self) -> None:
        """A failed attempt ended the round: train afresh for the same model."""
        self.solo = None
        self._trained_for = None

    def resume(self) -> None:
        """Train for the current model unless that has begun: at a commit, or once a catch-up
        that held it back is over."""
        state = self._consensus.state
        if self._trained_for == state.learning.model_height:
            return
        if self.is_contributor(state, Height(state.height + 1)):
            self._trained_for = state.learning.model_height
            self._background.spawn(self._contribute(state))
        elif self.is_solo_learner(state):
            self._trained_for = state.learning.model_height
            self._background.spawn(self._train_solo(state))

    def on_precommit(self, vote: Vote) -> None:
        """Optimistic execution: a block this node precommits almost always commits, so the next
        contribution starts training from its model now."""
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

    async def _train_early(self, model_hash: Hash) -> EncodedWeights | None:
        path = await self.weights.get(model_hash)
        if path is None:
            return None
        try:
            return await self.learning.propose_from(path, model_hash)
        except MLError as error:
            log.debug("early contribution failed: %s", error)
            return None

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
            self.solo = (state.model_hash, weights)
            self._on_trained()

    async def _contribute(self, state: ChainState) -> None:
        """Train from the new global model and announce a signed contribution."""
        if self.learning.is_copycat:  # testing: a free rider sends another's instead
            weights = await self._copy_another(state)
            if weights is None:
                return
        else:
            weights = await self._take_early(state)
        if weights is None:
            if not await self._follow_model(state):
                return
            try:
                weights = await self.learning.propose(update=True)
            except MLError as error:
                log.warning("no contribution this round: %s", error)
                return
        contribution = self._sign_contribution(state, weights.weights_hash)
        if self._is_current_model(state):
            self.contributions.add(contribution)
            self._announce(contribution, weights)
            self._on_trained()
            await self.learning.prepare(weights.path)  # scored and measured for the round

    async def _copy_another(self, state: ChainState) -> EncodedWeights | None:
        """Testing only (config ``attack = "copycat"``): the first other validator's
        contribution to ``state``'s model whose weights this node holds, to send as its own
        (a free rider, §3.5); None when none comes before the round deadline."""
        deadline = time.monotonic() + state.params.round_deadline / 1000
        while self._is_current_model(state) and time.monotonic() < deadline:
            for other in self.contributions.get(state.learning.model_height).values():
                path = self.weights.path_of(other.weights_hash)
                if other.validator != self._key.address and path is not None:
                    return EncodedWeights(other.weights_hash, path)
            await asyncio.sleep(COPYCAT_POLL_SECONDS)  # a test adversary: nothing to wake it
        return None

    async def _follow_model(self, state: ChainState) -> bool:
        """Wait until the learner holds ``state``'s model (large weights may take longer than
        one patience); False once the chain's model has moved on."""
        while self._is_current_model(state):
            self._model.ensure()
            if await self._model.ready():
                return self._is_current_model(state)
        return False

    def _is_current_model(self, state: ChainState) -> bool:
        """True while the chain's model is still the one ``state`` names."""
        return self._consensus.state.learning.model_height == state.learning.model_height

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
        """Stop training."""
        self._background.cancel()
