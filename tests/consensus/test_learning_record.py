"""Training as the chain records it (docs/protocol.md §3.3-3.4): precommits carry each
validator's score of a model update; the next block records their stake-weighted median; the
chain ends training on a target, a plateau or the budget, and then refuses model changes."""

from __future__ import annotations

import pytest

from learnchain.consensus.crypto import compute_hash
from learnchain.consensus.learning_record import compute_weighted_median
from learnchain.consensus.params import TrainingEnd
from learnchain.consensus.state import InvalidBlock
from learnchain.consensus.types import Address
from tests.consensus.chain import Chain, make_genesis_state, make_keys, sign_commit, with_params

KEYS = make_keys(4)


def scores(*values: int | None) -> dict[Address, int]:
    return {k.address: v for k, v in zip(KEYS, values, strict=True) if v is not None}


def update(chain: Chain, n: int, *values: int | None) -> None:
    """Commit a model update whose precommits carry ``values``, then a block that records them."""
    chain.commit(
        chain.next_block(model_hash=compute_hash(b"update %d" % n)), scores=scores(*values)
    )


def make_chain(**params: object) -> Chain:
    return Chain(make_genesis_state(KEYS, params=with_params(**params)), KEYS)


def test_the_weighted_median_is_what_more_than_half_of_the_stake_reaches() -> None:
    assert compute_weighted_median([(900, 1), (100, 1), (500, 1)]) == 500
    assert compute_weighted_median([(900, 3), (100, 1), (500, 1)]) == 900
    assert compute_weighted_median([(100, 1), (900, 1)]) == 100


def test_the_next_block_records_the_median_of_the_scores_on_the_precommits() -> None:
    chain = make_chain()
    update(chain, 1, 910_000, 950_000, 930_000, 10)  # one validator lies low
    assert chain.state.learning.model_height == 1
    assert chain.state.learning.model_score is None, "recorded by the next block"
    chain.advance()
    assert chain.state.learning.model_score == 910_000
    assert chain.state.learning.scored_height == 1
    assert chain.state.learning.best_score == 910_000


def test_scores_from_half_of_the_stake_or_less_record_nothing() -> None:
    chain = make_chain()
    update(chain, 1, 900_000, 900_000, None, None)
    chain.advance()
    assert chain.state.learning.model_score is None


def test_a_forged_score_breaks_the_commit_signature() -> None:
    chain = make_chain()
    block = chain.next_block(model_hash=compute_hash(b"update"))
    chain.commit(block, scores=scores(1, 2, 3, 4))
    assert chain.last_commit is not None
    honest = sign_commit(chain.state, block, KEYS, scores=scores(1, 2, 3, 4))
    forged_sigs = tuple(s.__class__(s.validator, s.signature, 999_999) for s in honest.signatures)
    chain.last_commit = honest.__class__(
        honest.height, honest.round, honest.block_hash, forged_sigs
    )
    with pytest.raises(InvalidBlock, match="last commit"):
        chain.advance()


def test_reaching_the_target_ends_training_and_the_recording_block_keeps_the_model() -> None:
    chain = make_chain(target_score=950_000)
    update(chain, 1, 960_000, 960_000, 960_000, 960_000)
    with pytest.raises(InvalidBlock, match=r"training ended at height 1 \(target\)"):
        chain.next_block(model_hash=compute_hash(b"update 2"))
    chain.advance()
    assert chain.state.learning.end == TrainingEnd.TARGET
    assert chain.state.learning.end_height == 2


def test_updates_that_do_not_improve_the_best_score_end_training_on_a_plateau() -> None:
    chain = make_chain(plateau_rounds=3, min_improvement=10_000)
    update(chain, 1, 900_000, 900_000, 900_000, 900_000)
    for n, value in enumerate((905_000, 909_999, 895_000), start=2):
        assert chain.state.learning.is_training()
        update(chain, n, value, value, value, value)
    chain.advance()
    learning = chain.state.learning
    assert learning.end == TrainingEnd.PLATEAU
    assert learning.best_score == 909_999 and learning.stale_rounds == 3


def test_an_improvement_resets_the_plateau_count() -> None:
    chain = make_chain(plateau_rounds=2, min_improvement=10_000)
    for n, value in enumerate((900_000, 905_000, 920_000, 921_000), start=1):
        update(chain, n, value, value, value, value)
    chain.advance()
    assert chain.state.learning.is_training()
    assert chain.state.learning.stale_rounds == 1


def test_failed_attempts_count_toward_the_plateau_and_rounds_without_an_attempt_do_not() -> None:
    chain = make_chain(plateau_rounds=3, min_improvement=10_000)
    update(chain, 1, 900_000, 900_000, 900_000, 900_000)
    chain.advance()  # records the score; a round-0 block that keeps the model: no attempt
    chain.advance()
    assert chain.state.learning.stale_rounds == 0
    chain.commit(chain.next_block(), round_=2)  # every update of this attempt was voted down
    chain.commit(chain.next_block(), round_=1)
    update(chain, 2, 905_000, 905_000, 905_000, 905_000)  # no improvement by 10_000
    chain.advance()
    assert chain.state.learning.stale_rounds == 3
    assert chain.state.learning.end == TrainingEnd.PLATEAU


def test_an_improvement_after_failed_attempts_resets_the_plateau_count() -> None:
    chain = make_chain(plateau_rounds=3, min_improvement=10_000)
    update(chain, 1, 900_000, 900_000, 900_000, 900_000)
    chain.commit(chain.next_block(), round_=1)
    chain.commit(chain.next_block(), round_=1)
    assert chain.state.learning.stale_rounds == 1, "the first block recorded the score"
    update(chain, 2, 950_000, 950_000, 950_000, 950_000)
    chain.advance()
    assert chain.state.learning.is_training() and chain.state.learning.stale_rounds == 0


def test_the_budget_ends_training_and_says_so() -> None:
    chain = make_chain(training_heights=2)
    chain.advance(model_hash=compute_hash(b"update 1"))
    chain.advance(model_hash=compute_hash(b"update 2"))
    with pytest.raises(InvalidBlock, match=r"training ended at height 2 \(budget\)"):
        chain.advance(model_hash=compute_hash(b"update 3"))
    chain.advance()
    assert chain.state.learning.end == TrainingEnd.BUDGET


def test_the_record_is_part_of_the_state_root() -> None:
    a, b = make_chain(), make_chain()
    update(a, 1, 900_000, 900_000, 900_000, 900_000)
    update(b, 1, 800_000, 800_000, 800_000, 800_000)
    a.advance()
    b.advance()
    assert a.state.learning != b.state.learning
    assert a.state.compute_root() != b.state.compute_root()
