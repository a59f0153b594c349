"""Learning at the pace of training, in the simulator (docs/protocol.md §3.2): learners that take
far longer than every consensus timeout still get their updates committed, whether the chain
makes empty blocks meanwhile or rests; a learner that crashes mid-training costs a slower round,
not a stall; poisoners get nothing in; and no run forks."""

from __future__ import annotations

import dataclasses

import pytest

from learnchain.consensus.simulation import Behaviour, Crash, SimulationConfig, run_simulation

# Every consensus timeout is well under 1 s; every learner needs 5-20 s per round.
TIMEOUTS = dataclasses.replace(SimulationConfig().timeouts, commit=50)
SLOW = SimulationConfig(
    validators=4,
    heights=12,
    timeouts=TIMEOUTS,
    training_ms=(5_000, 6_000, 8_000, 20_000),
    update_probability=1.0,
    max_sim_ms=400_000,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_chain_that_rests_commits_every_slow_update_and_no_empty_block(seed: int) -> None:
    result = run_simulation(dataclasses.replace(SLOW, seed=seed, wait_for_work=True))
    assert result.forks == 0
    assert result.heights >= 12
    assert result.model_updates == result.heights, "every block is a learning round"
    assert result.sim_seconds >= 12 * 8, "a round waits for a quorum's training (8 s)"


@pytest.mark.parametrize("seed", [0, 1])
def test_with_empty_blocks_slow_updates_survive_the_plain_blocks_between_them(seed: int) -> None:
    config = dataclasses.replace(SLOW, seed=seed, heights=600, wait_for_work=False)
    result = run_simulation(config)
    assert result.forks == 0
    assert result.heights >= 600
    # A round needs the third-fastest learner (8 s); the next proposer takes it within a block.
    assert result.model_updates >= result.sim_seconds // 10, "training in flight is not lost"
    assert result.model_updates < result.heights / 5, "most blocks are plain meanwhile"


def test_a_learner_that_crashes_mid_training_costs_a_round_not_the_chain() -> None:
    config = dataclasses.replace(
        SLOW,
        heights=10,
        wait_for_work=True,
        crashes=(Crash(node=0, at=12_000, down=30_000),),
    )
    result = run_simulation(config)
    assert result.forks == 0
    assert result.heights >= 10
    assert result.model_updates == result.heights


def test_slow_poisoners_get_no_update_committed() -> None:
    config = dataclasses.replace(
        SLOW,
        heights=12,
        wait_for_work=True,
        byzantine=1,
        behaviours=frozenset({Behaviour.POISON}),
    )
    result = run_simulation(config)
    assert result.forks == 0
    assert result.heights >= 12
    assert result.poisoned_committed == 0
