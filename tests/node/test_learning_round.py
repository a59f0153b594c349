"""An aggregate-mode round is ready when every awaited contributor is in; when some are missing,
once more than the threshold of stake is in plus 15 % of the time that took; and at the round
deadline with whatever came. A proposal asked for earlier aggregates only with a quorum."""

from __future__ import annotations

from learnchain.consensus.types import Address, Height, Threshold
from learnchain.node.learning.learning_round import Contributors, LearningRound
from tests.consensus.chain import make_genesis_state, make_keys

KEYS = make_keys(5)
VALIDATORS = make_genesis_state(KEYS).validators
EVERYONE = {k.address for k in KEYS}
TWO_THIRDS = Threshold(2, 3)


def first(n: int) -> set[Address]:
    return {k.address for k in KEYS[:n]}


def members(arrived: set[Address], awaited: set[Address]) -> Contributors:
    return Contributors.of(arrived, awaited, VALIDATORS, TWO_THIRDS)


def test_the_round_is_ready_as_soon_as_every_awaited_contributor_is_in() -> None:
    round_ = LearningRound(Height(3), started=100.0, deadline=60.0)
    assert not round_.is_ready(members(first(4), EVERYONE), now=120.0)
    assert round_.is_ready(members(EVERYONE, EVERYONE), now=120.5)


def test_with_a_quorum_in_the_rest_get_fifteen_percent_of_the_time_it_took() -> None:
    round_ = LearningRound(Height(3), started=100.0, deadline=600.0)
    assert not round_.is_ready(members(first(3), EVERYONE), now=110.0)
    assert not round_.is_ready(members(first(4), EVERYONE), now=120.0)
    assert round_.get_next_check(120.0) == 3.0
    assert not round_.is_ready(members(first(4), EVERYONE), now=122.9)
    assert round_.is_ready(members(first(4), EVERYONE), now=123.0)


def test_without_a_quorum_the_deadline_aggregates_what_came() -> None:
    round_ = LearningRound(Height(3), started=100.0, deadline=60.0)
    assert not round_.is_ready(members(first(2), EVERYONE), now=159.0)
    assert round_.get_next_check(159.0) == 1.0
    assert round_.is_ready(members(first(2), EVERYONE), now=160.0)
    assert not round_.is_ready(members(set(), EVERYONE), now=1000.0)


def test_a_validator_that_went_quiet_is_not_awaited() -> None:
    round_ = LearningRound(Height(3), started=0.0, deadline=60.0)
    assert round_.is_ready(members(first(2), first(2)), now=5.0)


def test_an_early_proposal_aggregates_only_with_a_quorum_or_after_the_deadline() -> None:
    round_ = LearningRound(Height(3), started=0.0, deadline=60.0)
    assert not round_.may_aggregate(members(first(3), EVERYONE), now=10.0)
    assert round_.may_aggregate(members(first(4), EVERYONE), now=10.0)
    assert round_.may_aggregate(members(first(1), EVERYONE), now=60.0)
