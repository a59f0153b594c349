"""The invariant checker flags what must never happen, and only that."""

from __future__ import annotations

import dataclasses

from learnchain.consensus.crypto import PrivateKey
from learnchain.consensus.messages import (
    Block,
    BlockHeader,
    Commit,
    CommitSig,
    DuplicateVoteEvidence,
    SignedVote,
    Vote,
)
from learnchain.consensus.types import Address, ChainId, Hash, Height, Round, Signature, VoteType
from learnchain.node.chain.misbehaviour import make_conflicting_vote
from tests.chaos.checker import InvariantChecker, compute_missed_streaks, compute_rss_growth

ZERO = Hash(bytes(32))


def make_block(height: int, model: bytes = b"m0", salt: bytes = b"") -> Block:
    header = BlockHeader(
        ChainId("chaos"),
        Height(height),
        ZERO,
        Address(bytes(20)),
        Hash(model.ljust(32, b"\0")),
        Hash((salt or b"s").ljust(32, b"\0")),
        ZERO,
        ZERO,
        ZERO,
        ZERO,
    )
    return Block(header)


def make_equivocation(key: PrivateKey) -> DuplicateVoteEvidence:
    vote = Vote(ChainId("chaos"), VoteType.PREVOTE, Height(2), Round(0), None, key.address)
    signed = SignedVote(vote, Signature(key.sign(vote.sign_bytes())))
    return DuplicateVoteEvidence.of(signed, make_conflicting_vote(signed, key))


def no_score(_model: bytes) -> float | None:
    return None


def test_identical_chains_pass() -> None:
    chain = [make_block(h) for h in (1, 2, 3)]
    checker = InvariantChecker()
    checker.check_chains({0: chain, 1: list(chain)}, no_score)
    assert checker.violations == []


def test_two_blocks_at_one_height_are_a_violation() -> None:
    checker = InvariantChecker()
    forked = [make_block(1), make_block(2, salt=b"other")]
    checker.check_chains({0: [make_block(1), make_block(2)], 1: forked}, no_score)
    assert any("two blocks at height 2" in v for v in checker.violations)


def test_a_node_missing_blocks_after_healing_is_a_violation() -> None:
    checker = InvariantChecker()
    checker.check_chains({0: [make_block(1), make_block(2)], 1: [make_block(1)]}, no_score)
    assert checker.violations == ["node1 has 1 blocks after healing, others 2"]


def test_evidence_is_a_violation_unless_against_the_validator_told_to_equivocate() -> None:
    liar, honest = PrivateKey.generate(), PrivateKey.generate()
    checker = InvariantChecker(equivocators=frozenset({bytes(liar.address)}))
    blocks = [
        make_block(1),
        dataclasses.replace(make_block(2), evidence=(make_equivocation(liar),)),
        dataclasses.replace(make_block(3), evidence=(make_equivocation(honest),)),
    ]
    checker.check_chains({0: blocks}, no_score)
    assert checker.evidence_seen == 2
    assert len(checker.violations) == 1 and "honest validator" in checker.violations[0]


def test_an_equivocation_that_left_no_evidence_is_a_violation() -> None:
    liar = PrivateKey.generate()
    checker = InvariantChecker(equivocators=frozenset({bytes(liar.address)}), expect_evidence=True)
    checker.check_chains({0: [make_block(1), make_block(2)]}, no_score)
    assert checker.violations == ["a validator equivocated and no evidence of it was committed"]


def test_a_committed_model_far_below_the_best_before_it_is_a_poisoned_update() -> None:
    scores = {b"a": 0.5, b"b": 0.9, b"c": 0.82, b"d": 0.3}
    blocks = [make_block(h, model) for h, model in enumerate([b"a", b"b", b"c", b"d"], start=1)]
    checker = InvariantChecker(max_accuracy_drop=0.15)
    checker.check_chains({0: blocks}, lambda h: scores[h.rstrip(b"\0")])
    assert len(checker.violations) == 1 and "height 4" in checker.violations[0]


def test_the_stall_after_a_heal_lasts_until_every_node_passes_the_height_at_the_heal() -> None:
    checker = InvariantChecker(progress_bound=30)
    checker.watch(0.0, {0: 10, 1: 10, 2: 4}, {})
    checker.healed(1.0, "kill on (2,)")
    checker.watch(5.0, {0: 12, 1: 12, 2: 9}, {})
    assert checker.stalls == []
    checker.watch(8.0, {0: 13, 1: 13, 2: 11}, {})
    assert checker.stalls == [7.0] and checker.violations == []


def test_no_progress_within_the_bound_is_a_violation_and_a_silent_node_is_no_progress() -> None:
    checker = InvariantChecker(progress_bound=30)
    checker.watch(0.0, {0: 10, 1: 10}, {})
    checker.healed(0.0, "partition on (0,)")
    checker.watch(20.0, {0: 15, 1: None}, {})
    checker.watch(31.0, {0: 16, 1: None}, {})
    assert len(checker.violations) == 1 and "partition on (0,)" in checker.violations[0]


def test_memory_above_the_bound_is_reported_once_per_node() -> None:
    checker = InvariantChecker(memory_limit_mb=500)
    for rss in (300.0, 600.0, 700.0):
        checker.watch(0.0, {0: 1}, {0: rss, 1: 200.0})
    assert checker.max_rss_mb == {0: 700.0, 1: 200.0}
    assert len(checker.violations) == 1 and "node0" in checker.violations[0]


def test_memory_is_kept_per_minute_and_its_growth_after_a_minute_is_the_most_a_node_rose() -> None:
    checker = InvariantChecker()
    looks = [(100.0, 280.0, 250.0), (130.0, 284.0, 251.0), (700.0, 289.0, 252.0)]
    looks += [(1300.0, 300.0, 249.0), (1400.0, 296.0, 262.0)]
    for now, first, second in looks:
        checker.watch(now, {0: 1, 1: 1}, {0: first, 1: second})
    assert checker.rss_by_minute[0] == {0: 284.0, 10: 289.0, 20: 300.0, 21: 296.0}
    # from minute 10 on, node 0 rose by 11 MB, node 1 by 10
    assert compute_rss_growth(checker.rss_by_minute, after=10) == 11.0
    assert compute_rss_growth(checker.rss_by_minute, after=30) is None


def test_a_missed_streak_counts_consecutive_commits_without_the_validator() -> None:
    keys = [PrivateKey.generate() for _ in range(2)]
    a, b = (bytes(k.address) for k in keys)

    def signed_by(*who: PrivateKey) -> Block:
        sigs = tuple(CommitSig(k.address, Signature(bytes(64))) for k in who)
        return dataclasses.replace(
            make_block(1), last_commit=Commit(Height(1), Round(0), ZERO, sigs)
        )

    both, only_a = signed_by(*keys), signed_by(keys[0])
    blocks = [make_block(1), only_a, only_a, both, only_a, both]
    assert compute_missed_streaks(blocks, [a, b]) == {a: 0, b: 2}
