"""The model follower brings the learner to the chain's model, asking again while no peer has
the weights, and never makes consensus wait longer than its patience."""

from __future__ import annotations

import asyncio

from learnchain.consensus.crypto import compute_hash
from learnchain.consensus.types import Hash
from learnchain.ml.codec import WeightsBytes
from learnchain.node.model_follower import ModelFollower

OLD, NEW = compute_hash(b"old"), compute_hash(b"new")


class Learner:
    def __init__(self) -> None:
        self.model = OLD
        self.accepted: list[bytes] = []

    def current_hash(self) -> Hash:
        return self.model

    async def accept(self, data: WeightsBytes) -> None:
        self.accepted.append(bytes(data))
        self.model = NEW


def test_a_learner_on_the_chains_model_is_ready_at_once() -> None:
    async def scenario() -> bool:
        learner = Learner()

        async def never(_: Hash) -> WeightsBytes | None:
            raise AssertionError("nothing to fetch")

        follower = ModelFollower(learner, lambda: OLD, never, patience=5.0)
        follower.ensure()
        return await follower.ready()

    assert asyncio.run(scenario())


def test_the_learner_follows_once_a_peer_has_the_weights() -> None:
    async def scenario() -> tuple[bool, list[bytes], int]:
        learner, asked = Learner(), []

        async def fetch(weights_hash: Hash) -> WeightsBytes | None:
            asked.append(weights_hash)
            return b"new weights" if len(asked) >= 2 else None  # the first peer has none yet

        follower = ModelFollower(learner, lambda: NEW, fetch, patience=5.0)
        follower.ensure()
        ready = await follower.ready()
        follower.close()
        return ready, learner.accepted, len(asked)

    ready, accepted, asked = asyncio.run(scenario())
    assert ready and accepted == [b"new weights"] and asked == 2


def test_consensus_waits_no_longer_than_the_patience() -> None:
    async def scenario() -> bool:
        learner = Learner()

        async def nobody(_: Hash) -> WeightsBytes | None:
            return None

        follower = ModelFollower(learner, lambda: NEW, nobody, patience=0.05)
        follower.ensure()
        ready = await follower.ready()
        follower.close()
        return ready

    assert not asyncio.run(scenario())
