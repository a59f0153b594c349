"""A chain that rests still makes the blocks its state needs (docs/protocol.md §2.2.1): once
training is over, a stake or unstake changes the validator set within a few blocks and unbonding
completes, with no other transaction to wake the chain; then it rests again."""

from __future__ import annotations

import dataclasses

import pytest

from learnchain.consensus.messages import TxKind
from learnchain.consensus.params import ChainParams
from learnchain.consensus.simulation import (
    STAKE_UNIT,
    Simulation,
    SimulationConfig,
    StakingTx,
)
from learnchain.consensus.state import ChainState, is_awaiting_blocks

NEVER_READY = 10**8  # the learners never finish: the chain has no learning work at all
PARAMS = ChainParams(unbonding_blocks=6)
RESTING = SimulationConfig(
    validators=4,
    heights=10**6,  # never reached: the run ends at max_sim_ms
    training_ms=(NEVER_READY,) * 4,
    wait_for_work=True,
    params=PARAMS,
    max_sim_ms=60_000,
)
UNSTAKE_ALL = StakingTx(at=5_000, node=3, kind=TxKind.UNSTAKE, amount=STAKE_UNIT)


def final_state(simulation: Simulation) -> ChainState:
    """Node 0's state after the run."""
    simulation.run()
    return simulation.nodes[0].engine.state


def tx_height(simulation: Simulation) -> int:
    """The height of the block that carried the (single) transaction."""
    node = simulation.nodes[0]
    return next(h for h, (block, _) in sorted(node.blocks.items()) if block.txs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_unstake_on_a_resting_chain_leaves_the_set_and_its_unbonding_completes(
    seed: int,
) -> None:
    simulation = Simulation(dataclasses.replace(RESTING, seed=seed, staking=(UNSTAKE_ALL,)))
    leaver = simulation.keys[3].address
    state = final_state(simulation)
    at = tx_height(simulation)
    assert state.validators.get_validator(leaver) is None, "the set changed without other txs"
    assert not state.unbonding, "the unbonding matured"
    assert state.get_account(leaver).balance == 1000 + STAKE_UNIT, "its tokens came back"
    # One block to apply the set change at H+2, then blocks until the unbonding matures; after
    # that nothing is left to do and the chain rests again.
    assert state.height <= at + PARAMS.unbonding_blocks + 1
    assert not is_awaiting_blocks(state)


def test_a_stake_on_a_resting_chain_takes_effect_within_two_blocks() -> None:
    topup = StakingTx(at=5_000, node=2, kind=TxKind.STAKE, amount=2 * STAKE_UNIT)
    simulation = Simulation(dataclasses.replace(RESTING, staking=(topup,)))
    staker = simulation.keys[2].address
    state = final_state(simulation)
    assert state.validators.get_power(staker) == 3 * STAKE_UNIT
    assert state.height == tx_height(simulation) + 1, "one block more, then rest"


def test_a_chain_with_nothing_to_do_makes_no_block() -> None:
    simulation = Simulation(RESTING)
    assert final_state(simulation).height == 0
