"""The engine over a simulated network: safety and liveness under faults, with fixed seeds."""

from __future__ import annotations

import pytest

from learnchain.consensus.simulation import (
    Behaviour,
    Crash,
    Partition,
    SimulationConfig,
    run_simulation,
)
from learnchain.consensus.types import Threshold

HALF = Threshold(1, 2)
TWO_THIRDS = Threshold(2, 3)


def test_proposals_follow_stake_over_three_thousand_heights() -> None:
    result = run_simulation(
        SimulationConfig(validators=7, stakes=(1, 1, 2, 3, 5, 8, 13), heights=3000, seed=1)
    )
    assert result.heights >= 3000
    assert result.forks == 0
    total = sum(result.proposals_by_validator)
    for count, share in zip(result.proposals_by_validator, result.stake_share, strict=True):
        assert abs(count / total - share) <= 0.05 * share


@pytest.mark.parametrize("seed", range(20))
def test_two_byzantine_of_seven_cannot_fork_and_are_slashed(seed: int) -> None:
    result = run_simulation(SimulationConfig(validators=7, heights=120, byzantine=2, seed=seed))
    assert result.forks == 0
    assert result.heights >= 120
    assert result.slashed == [5, 6]
    assert result.poisoned_committed == 0


def test_half_threshold_single_equivocator_can_fork() -> None:
    # Stakes 2, 2, 1: each honest validator plus the equivocator is 3 of 5, more than 1/2.
    result = run_simulation(
        SimulationConfig(
            validators=3,
            stakes=(2, 2, 1),
            heights=20,
            threshold=HALF,
            byzantine=1,
            behaviours=frozenset({Behaviour.SPLIT}),
            max_sim_ms=30_000,
        )
    )
    assert result.forks >= 1


def test_two_thirds_threshold_resists_the_same_equivocator() -> None:
    result = run_simulation(
        SimulationConfig(
            validators=3,
            stakes=(2, 2, 1),
            heights=20,
            threshold=TWO_THIRDS,
            byzantine=1,
            behaviours=frozenset({Behaviour.SPLIT}),
        )
    )
    assert result.forks == 0
    assert result.heights >= 20


@pytest.mark.parametrize("seed", range(5))
def test_half_threshold_with_crashes_only_never_forks(seed: int) -> None:
    result = run_simulation(
        SimulationConfig(
            validators=5,
            heights=200,
            threshold=HALF,
            crashes=(Crash(1, 300, 2_000), Crash(3, 1_000, 1_500), Crash(0, 4_000, 500)),
            drop=0.05,
            seed=seed,
        )
    )
    assert result.forks == 0
    assert result.heights >= 200


@pytest.mark.parametrize("seed", range(3))
def test_drops_and_a_healed_partition_do_not_fork_and_progress_resumes(seed: int) -> None:
    partition = Partition(1_000, 6_000, (frozenset({0, 1, 2}), frozenset({3, 4, 5, 6})))
    before_heal = run_simulation(
        SimulationConfig(
            validators=7,
            heights=10_000,
            drop=0.2,
            partitions=(partition,),
            seed=seed,
            max_sim_ms=5_900,
        )
    )
    result = run_simulation(
        SimulationConfig(validators=7, heights=150, drop=0.2, partitions=(partition,), seed=seed)
    )
    assert before_heal.forks == 0
    assert result.forks == 0
    assert result.heights >= 150
    assert result.heights > before_heal.heights  # progress after the heal


def test_no_progress_without_a_quorum_online() -> None:
    # 3 of 7 crashed for the whole run: 4/7 is not more than 2/3.
    crashes = tuple(Crash(i, 0, 10**9) for i in (4, 5, 6))
    result = run_simulation(
        SimulationConfig(validators=7, heights=50, crashes=crashes, max_sim_ms=20_000)
    )
    assert result.heights == 0
    assert result.forks == 0


def test_a_crashed_validator_restarts_and_catches_up() -> None:
    result = run_simulation(
        SimulationConfig(validators=4, heights=300, crashes=(Crash(2, 500, 3_000),), seed=4)
    )
    assert result.forks == 0
    assert result.heights >= 300  # every live honest validator, the restarted one included


def test_silent_byzantine_validators_below_one_third_only_slow_the_chain() -> None:
    result = run_simulation(
        SimulationConfig(
            validators=7, heights=100, byzantine=2, behaviours=frozenset({Behaviour.SILENT}), seed=2
        )
    )
    assert result.forks == 0
    assert result.heights >= 100
    assert result.max_rounds >= 2  # the silent validators' turns time out


def test_poisoned_updates_are_never_committed_when_honest_stake_meets_the_threshold() -> None:
    result = run_simulation(
        SimulationConfig(
            validators=4,
            heights=100,
            byzantine=1,
            behaviours=frozenset({Behaviour.POISON, Behaviour.APPROVE_ALL}),
            seed=5,
        )
    )
    assert result.poisoned_committed == 0
    assert result.proposals_by_validator[3] == 0
    assert result.heights >= 100
    # its rejected proposals are proven on chain, and the forfeits take it below min_stake
    assert result.rejected == [3] and result.rejections_committed >= 1


def test_only_poisoners_forfeit_deposits_for_rejected_proposals_under_faults() -> None:
    result = run_simulation(
        SimulationConfig(
            validators=7,
            stakes=(5, 5, 5, 5, 5, 5, 5),
            heights=400,
            byzantine=2,
            behaviours=frozenset({Behaviour.POISON}),
            drop=0.1,
            seed=3,
        )
    )
    assert result.forks == 0 and result.poisoned_committed == 0
    assert result.rejected == [5, 6]
    assert result.rejections_committed >= 10


def test_the_same_seed_gives_the_same_run() -> None:
    config = SimulationConfig(validators=5, heights=60, byzantine=1, drop=0.1, seed=11)
    a, b = run_simulation(config), run_simulation(config)
    assert a.as_dict() | {"wall_seconds": 0, "heights_per_second": 0} == b.as_dict() | {
        "wall_seconds": 0,
        "heights_per_second": 0,
    }


def test_thousands_of_heights_with_every_fault_at_once() -> None:
    result = run_simulation(
        SimulationConfig(
            validators=7,
            heights=2000,
            byzantine=2,
            drop=0.1,
            partitions=(Partition(5_000, 15_000, (frozenset({0, 1, 2, 3}), frozenset({4, 5, 6}))),),
            crashes=(Crash(1, 30_000, 5_000),),
            seed=7,
        )
    )
    assert result.forks == 0
    assert result.heights >= 2000
    assert result.poisoned_committed == 0
    assert result.slashed == [5, 6]


@pytest.mark.parametrize("seed", [3, 5])
def test_validators_locked_in_different_rounds_recover_through_gossiped_polkas(seed: int) -> None:
    # Regression: with drops, earlier rounds' polka prevotes must be gossiped again, or honest
    # validators locked on different values can never accept a re-proposal (Alg.1 line 28).
    result = run_simulation(
        SimulationConfig(validators=7, heights=300, byzantine=2, drop=0.1, seed=seed)
    )
    assert result.forks == 0
    assert result.heights >= 300


@pytest.mark.parametrize("seed", range(10))
def test_equivocators_and_drops_cost_only_a_few_rounds(seed: int) -> None:
    # Regression: an equivocator's split votes must not leave honest validators seeing different
    # polkas for many rounds (each (validator, block) pair counts toward that block).
    result = run_simulation(
        SimulationConfig(validators=7, heights=120, byzantine=2, drop=0.2, seed=seed)
    )
    assert result.forks == 0
    assert result.heights >= 120
    assert result.max_rounds <= 8
