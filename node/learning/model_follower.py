"""Keeps the learner on the chain's model: fetches and accepts committed weights.

Consensus never waits on learning without bound: ``ready`` waits at most ``patience`` seconds,
after which a verdict is a rejection and a proposal carries no update, and the round goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from learnchain.consensus.types import Hash
from learnchain.node.libs.background import Background

RETRY_SECONDS = 0.5  # no peer has the chain's model yet: ask again after this
log = logging.getLogger("learnchain.learning")


class ModelHolder(Protocol):
    """The learner's global model (the learning worker)."""

    def current_hash(self) -> Hash:
        """The global model's canonical hash."""
        ...

    async def accept(self, path: Path, weights_hash: Hash) -> None:
        """Make committed weights (their stored file) the global model."""
        ...


class ModelFollower:
    """Brings the learner to the chain's model in the background."""

    def __init__(
        self,
        learner: ModelHolder,
        chain_model: Callable[[], Hash],
        get_weights: Callable[[Hash], Awaitable[Path | None]],
        patience: float,
    ) -> None:
        self._learner = learner
        self._chain_model = chain_model
        self._get_weights = get_weights
        self._patience = patience
        self._background = Background()
        self._task: asyncio.Task[None] | None = None

    def ensure(self) -> None:
        """Start following the chain's model when the learner holds another."""
        if self._learner.current_hash() == self._chain_model():
            return
        if self._task is None or self._task.done():
            self._task = self._background.spawn(self._follow())

    async def _follow(self) -> None:
        while self._learner.current_hash() != self._chain_model():
            target = self._chain_model()
            path = await self._get_weights(target)
            if path is None:
                await asyncio.sleep(RETRY_SECONDS)  # the chain keeps going meanwhile
                continue
            await self._learner.accept(path, target)

    async def ready(self) -> bool:
        """Wait (at most ``patience`` seconds) until the learner holds the chain's model."""
        if self._task is None or self._task.done():
            return True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self._patience)
        except TimeoutError:
            log.warning("the learner does not hold the chain's model yet; not waiting longer")
            return False
        except Exception:
            return False
        return True

    def close(self) -> None:
        """Stop following."""
        self._background.cancel()
