"""The contribution pool keeps contributions to the current model and the next, checked by the
state transition's own rule; blocks that keep the model leave them, and once the model changes
the older ones are dropped."""

from __future__ import annotations

from dataclasses import replace

import pytest

from learnchain.consensus.crypto import PrivateKey, SignatureVerifier, compute_hash
from learnchain.consensus.messages import Contribution
from learnchain.consensus.state import ChainState
from learnchain.consensus.types import Height, Signature
from learnchain.node.learning.contribution_pool import ContributionError, ContributionPool
from tests.consensus.chain import CHAIN, Chain, make_genesis_state, make_keys

KEYS = make_keys(4)


def sign(key: PrivateKey, height: int, samples: int = 10) -> Contribution:
    unsigned = Contribution(
        CHAIN, Height(height), key.address, compute_hash(b"w%d" % height), samples, Signature(b"")
    )
    return replace(unsigned, signature=key.sign(unsigned.sign_bytes()))


def make_state(height: int, plain_after: int = 0) -> ChainState:
    """Every block up to ``height`` changes the model; ``plain_after`` blocks keep it."""
    chain = Chain(make_genesis_state(KEYS), KEYS)
    for h in range(height):
        chain.advance(model_hash=compute_hash(b"model %d" % (h + 1)))
    for _ in range(plain_after):
        chain.advance()
    return chain.state


def test_contributions_to_the_current_model_and_the_next_are_kept() -> None:
    pool, state = ContributionPool(SignatureVerifier()), make_state(2)
    assert pool.receive(state, sign(KEYS[0], 2))
    assert pool.receive(state, sign(KEYS[1], 3))
    assert set(pool.get(Height(2))) == {KEYS[0].address}
    assert set(pool.get(Height(3))) == {KEYS[1].address}


def test_contributions_to_an_old_or_far_model_are_ignored_without_error() -> None:
    pool, state = ContributionPool(SignatureVerifier()), make_state(2)
    assert not pool.receive(state, sign(KEYS[0], 1))
    assert not pool.receive(state, sign(KEYS[0], 4))
    assert pool.get(Height(1)) == {} and pool.get(Height(4)) == {}


@pytest.mark.parametrize(
    ("contribution", "error"),
    [
        (sign(PrivateKey.from_seed(b"x" * 32), 0), "non-validator"),
        (replace(sign(KEYS[0], 0), samples=11), "signature"),
        (replace(sign(KEYS[0], 0), signature=Signature(bytes(64))), "signature"),
        (sign(KEYS[0], 0, samples=0), "no samples"),
    ],
)
def test_a_bad_contribution_is_refused_and_kept_nowhere(
    contribution: Contribution, error: str
) -> None:
    pool, state = ContributionPool(SignatureVerifier()), make_state(0)
    with pytest.raises(ContributionError, match=error):
        pool.receive(state, contribution)
    assert pool.get(Height(0)) == {}


def test_a_commit_drops_older_contributions_and_remembers_the_last_contributors() -> None:
    pool = ContributionPool(SignatureVerifier())
    state = make_state(2)
    pool.update(state)
    pool.receive(state, sign(KEYS[0], 2))
    pool.receive(state, sign(KEYS[1], 2))
    pool.receive(state, sign(KEYS[2], 3))
    pool.update(make_state(3))
    assert pool.last_contributors == {KEYS[0].address, KEYS[1].address}
    assert pool.get(Height(2)) == {}
    assert set(pool.get(Height(3))) == {KEYS[2].address}
    assert set(pool.iter_weights_hashes()) == {compute_hash(b"w3")}


def test_blocks_that_keep_the_model_keep_its_contributions() -> None:
    pool = ContributionPool(SignatureVerifier())
    pool.update(make_state(2))
    pool.receive(make_state(2), sign(KEYS[0], 2))
    after_plain_blocks = make_state(2, plain_after=3)
    assert after_plain_blocks.height == 5 and after_plain_blocks.learning.model_height == 2
    pool.update(after_plain_blocks)
    assert set(pool.get(Height(2))) == {KEYS[0].address}
    assert pool.receive(after_plain_blocks, sign(KEYS[1], 2))
    assert not pool.receive(after_plain_blocks, sign(KEYS[2], 4)), "no model at height 4"


def test_the_pool_remembers_when_each_contribution_first_arrived() -> None:
    """A free rider's copy reaches a validator after what it copies (§3.5): the appraisal
    reads the first arrival, and a contribution sent again keeps it."""
    now = iter([10.0, 12.0, 13.0, 14.0])
    pool = ContributionPool(SignatureVerifier(), clock=lambda: next(now))
    state = make_state(2)
    pool.update(state)
    first, second = sign(KEYS[0], 2), sign(KEYS[1], 2)
    pool.receive(state, first)
    pool.receive(state, second)
    pool.receive(state, first)  # gossip brings it again
    assert pool.get_arrival(first) == 10.0 and pool.get_arrival(second) == 12.0
    assert pool.get_arrival(sign(KEYS[2], 2)) == float("inf"), "known only from a block"
    pool.update(make_state(3))
    assert pool.get_arrival(first) == float("inf"), "forgotten with its model"
