"""The model follower brings the learner to the chain's model, asking again while no peer has
the weights, and never makes consensus wait longer than its patience."""

from __future__ import annotations

import asyncio
from pathlib import Path

from learnchain.consensus.crypto import compute_hash
from learnchain.consensus.types import Hash
from learnchain.node.learning.model_follower import ModelFollower

OLD, NEW = compute_hash(b"old"), compute_hash(b"new")


class Learner:
    def __init__(self) -> None:
        self.model = OLD
        self.accepted: list[tuple[Path, Hash]] = []

    def current_hash(self) -> Hash:
        return self.model

    async def accept(self, path: Path, weights_hash: Hash) -> None:
        self.accepted.append((path, weights_hash))
        self.model = weights_hash


def test_a_learner_on_the_chains_model_is_ready_at_once() -> None:
    async def scenario() -> bool:
        learner = Learner()

        async def never(_: Hash) -> Path | None:
            raise AssertionError("nothing to fetch")

        follower = ModelFollower(learner, lambda: OLD, never, patience=5.0)
        follower.ensure()
        return await follower.ready()

    assert asyncio.run(scenario())


def test_the_learner_follows_once_a_peer_has_the_weights() -> None:
    async def scenario() -> tuple[bool, list[tuple[Path, Hash]], int]:
        learner, asked = Learner(), []

        async def fetch(weights_hash: Hash) -> Path | None:
            asked.append(weights_hash)
            return Path("new.safetensors") if len(asked) >= 2 else None  # the first has none yet

        follower = ModelFollower(learner, lambda: NEW, fetch, patience=5.0)
        follower.ensure()
        ready = await follower.ready()
        follower.close()
        return ready, learner.accepted, len(asked)

    ready, accepted, asked = asyncio.run(scenario())
    assert ready and accepted == [(Path("new.safetensors"), NEW)] and asked == 2


def test_consensus_waits_no_longer_than_the_patience() -> None:
    async def scenario() -> bool:
        learner = Learner()

        async def nobody(_: Hash) -> Path | None:
            return None

        follower = ModelFollower(learner, lambda: NEW, nobody, patience=0.05)
        follower.ensure()
        ready = await follower.ready()
        follower.close()
        return ready

    assert not asyncio.run(scenario())
