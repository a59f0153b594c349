"""Whom an aggregating proposer waits for before combining contributions."""

from __future__ import annotations

from learnchain.consensus.types import Address
from learnchain.node.learning.contribution_pool import compute_awaited_contributors

A, B, C, D = (Address(bytes([i]) * 20) for i in range(4))
VALIDATORS = {A, B, C, D}


def test_with_no_contribution_seen_at_the_last_height_every_validator_is_awaited() -> None:
    assert compute_awaited_contributors(VALIDATORS, set(), A) == VALIDATORS


def test_a_validator_that_did_not_contribute_last_height_is_not_waited_out() -> None:
    assert compute_awaited_contributors(VALIDATORS, {A, B, C}, A) == {A, B, C}


def test_the_proposer_always_waits_for_its_own_contribution() -> None:
    assert compute_awaited_contributors(VALIDATORS, {B, C, D}, A) == VALIDATORS


def test_a_contributor_that_left_the_validator_set_is_not_awaited() -> None:
    former = Address(b"\x09" * 20)
    assert compute_awaited_contributors(VALIDATORS, {A, former}, B) == {A, B}
