"""What the learning application and consensus exchange (ABCI++-style): the view of the engine
the application reads, a proposal's model update, a verdict, and this validator's evaluation of a
model; and the one thing every part of the application needs, a block's contributions' weights.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from learnchain.consensus.messages import Block, Contribution
from learnchain.consensus.state import ChainState
from learnchain.consensus.types import Hash
from learnchain.consensus.validators import ValidatorSet
from learnchain.node.weights.weights_pool import WeightsPool

# (contributor id, weights file, samples): what the learning worker aggregates or appraises
ContributionInput = tuple[str, Path, int]


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

    def set_learning_budget(self, budget_ms: int) -> None:
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


async def fetch_contribution_weights(
    weights: WeightsPool, state: ChainState, contributions: Sequence[Contribution]
) -> list[ContributionInput]:
    """(contributor id, weights file, samples) of each of ``contributions`` whose weights could
    be had (from here, or their maker first), in order."""

    async def get(contribution: Contribution) -> Path | None:
        member = state.validators.get_validator(contribution.validator)
        maker = member.endpoint if member else None
        return await weights.get(contribution.weights_hash, maker, None, "contribution")

    fetched = await asyncio.gather(*(get(c) for c in contributions))
    return [
        (c.validator.hex(), path, c.samples)
        for c, path in zip(contributions, fetched, strict=True)
        if path is not None
    ]
