"""The learning application behind consensus, in the shape of ABCI++.

- ``prepare_proposal``: a proposer's model update: trained (solo) or aggregated from the
  validators' contributions (aggregate).
- ``process_proposal``: the ML half of valid(v): fetch the proposed weights, check their hash,
  and score them on the private vote set.
- ``on_precommit``: optimistic execution: start training the next contribution from a block this
  node precommits.
- ``on_commit``: follow the committed model and, in aggregate mode, train and announce a
  contribution for the next block.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from consensus.crypto import PrivateKey
from consensus.events import RequestProposal, RequestVerdict
from consensus.messages import Block, Contribution, Vote
from consensus.params import Mode
from consensus.state import ChainState
from consensus.types import Hash, Height, Signature, VoteType
from consensus.validators import ValidatorSet, compute_proposer_of_round
from ml.codec import WeightsBytes
from ml.errors import MLError
from node.background import Background
from node.contribution_pool import ContributionPool, compute_awaited_contributors
from node.learning import EncodedWeights, LearningWorker
from node.model_follower import ModelFollower
from node.peer_manager import compute_inline_weights
from node.weights_pool import WeightsPool

ROUNDS_BEFORE_PLAIN_BLOCKS = 2
log = logging.getLogger("learnchain.learning")


class ConsensusView(Protocol):
    """What the application reads of the consensus engine."""

    @property
    def state(self) -> ChainState:
        """The state after the last decided block."""
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
class ModelUpdate:
    """What a proposer puts in its block besides transactions."""

    model_hash: Hash
    contributions: tuple[Contribution, ...] = ()


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
        syncing: Callable[[], bool],
        announce: Callable[[Contribution, EncodedWeights], None],
    ) -> None:
        self.learning = learning
        self.weights = weights
        self.contributions = contributions
        self._consensus = consensus
        self._key = key
        self._train = train
        self._patience = patience
        self._syncing = syncing
        self._announce = announce
        self._background = Background()
        self.model = ModelFollower(
            learning, lambda: consensus.state.model_hash, weights.get, patience
        )
        self.proposed: EncodedWeights | None = None  # pushed beside our proposal
        # (height, model hash, training): the next contribution, started at our precommit
        self._early: tuple[Height, Hash, asyncio.Task[EncodedWeights | None]] | None = None

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
            and state.params.is_training_height(request.height)
        ):
            return unchanged
        try:
            if state.params.mode == Mode.SOLO:
                return await self._propose(await self.learning.propose())
            return await self._aggregate(state)
        except MLError as error:
            log.warning("no model update in this proposal: %s", error)
            return unchanged

    async def process_proposal(self, request: RequestVerdict) -> bool:
        """The ML verdict on a proposed block's weights: approve or reject."""
        self.model.ensure()  # an early contribution may have moved the learner ahead
        if not await self.model.ready():
            return False
        validators = self._consensus.validators
        member = validators.get_validator(compute_proposer_of_round(validators, request.round))
        data = await self.weights.get(
            request.block.header.model_hash, member.endpoint if member else None
        )
        if data is None:
            return False
        try:
            return await self.learning.vote(data)
        except MLError:
            return False

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
        if block is None:
            return
        model_hash = block.header.model_hash
        task = self._background.spawn(self._train_early(model_hash))
        self._early = (vote.height, model_hash, task)

    def on_commit(self, state: ChainState) -> None:
        """A written block: follow its model and, in aggregate mode, train a contribution."""
        self.contributions.update(state)
        self.model.ensure()
        if self.is_contributor(state, Height(state.height + 1)):
            self._background.spawn(self._contribute(state))

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
        if self.contributions.receive(self._consensus.state, contribution) and weights:
            self.weights.offer(contribution.weights_hash, weights)

    # --- helpers ------------------------------------------------------------------------------

    def is_contributor(self, state: ChainState, height: Height) -> bool:
        """True when this node trains a contribution for the block at ``height``."""
        return (
            self._train
            and state.params.mode == Mode.AGGREGATE
            and state.params.is_training_height(height)
            and self._consensus.is_validator()
            and not self._syncing()
        )

    def weights_in_use(self) -> set[Hash]:
        """Weights this height's work still needs (kept from pruning)."""
        in_use = set(self.contributions.iter_weights_hashes())
        if self.proposed is not None:
            in_use.add(self.proposed.weights_hash)
        return in_use

    async def _propose(self, weights: EncodedWeights) -> ModelUpdate:
        await self.weights.store(weights)
        self.proposed = weights
        return ModelUpdate(weights.weights_hash)

    async def _aggregate(self, state: ChainState) -> ModelUpdate:
        """Aggregate the contributions that came in time (see ``compute_awaited_contributors``)."""
        wanted = {v.address for v in state.validators.validators}
        awaited = compute_awaited_contributors(
            wanted, self.contributions.last_contributors, self._key.address
        )
        arrived = await self.contributions.wait_for(
            state.height, awaited, self._patience / 2, lambda: self._consensus.state is state
        )
        pool = [c for address, c in arrived.items() if address in wanted]
        fetched = await asyncio.gather(*(self._get_contribution_weights(state, c) for c in pool))
        inputs = [
            (c.validator.hex(), data, c.samples)
            for c, data in zip(pool, fetched, strict=True)
            if data is not None
        ]
        if not inputs:
            return ModelUpdate(state.model_hash)
        weights, used_ids = await self.learning.aggregate(inputs)
        update = await self._propose(weights)
        used = tuple(c for c in pool if c.validator.hex() in used_ids)
        return ModelUpdate(update.model_hash, used)

    async def _get_contribution_weights(
        self, state: ChainState, contribution: Contribution
    ) -> WeightsBytes | None:
        member = state.validators.get_validator(contribution.validator)
        return await self.weights.get(
            contribution.weights_hash, member.endpoint if member else None
        )

    async def _train_early(self, model_hash: Hash) -> EncodedWeights | None:
        data = await self.weights.get(model_hash)
        if data is None:
            return None
        try:
            return await self.learning.propose_from(data)
        except MLError as error:
            log.debug("early contribution failed: %s", error)
            return None

    async def _contribute(self, state: ChainState) -> None:
        """Train from the new global model and announce a signed contribution."""
        weights = await self._take_early(state)
        if weights is None:
            if not await self.model.ready() or self._consensus.state is not state:
                return
            try:
                weights = await self.learning.propose()
            except MLError as error:
                log.warning("no contribution this round: %s", error)
                return
        await self.weights.store(weights)
        contribution = self._sign_contribution(state, weights.weights_hash)
        if self._consensus.state is state:
            self.contributions.add(contribution)
            self._announce(contribution, weights)

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
            state.height,
            self._key.address,
            weights_hash,
            self.learning.learner.samples,
            Signature(b""),
        )
        return replace(unsigned, signature=self._key.sign(unsigned.sign_bytes()))

    def close(self) -> None:
        """Stop training and following."""
        self._background.cancel()
        self.model.close()
