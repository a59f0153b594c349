"""Block time is BFT time (CometBFT's): the stake-weighted median of the precommit times in the
block's last commit, always later than the block before; faulty clocks below a third of the
stake cannot move it outside the honest ones."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from learnchain.consensus.state import (
    InvalidBlock,
    compute_block_time,
    compute_weighted_median_time,
    process_block,
)
from learnchain.consensus.types import Address, TimeMs
from tests.consensus.chain import Chain, make_genesis_state, make_keys

KEYS = make_keys(4)
START = 1_796_000_000_000  # ms: late 2026


def new_chain(stakes: list[int] | None = None) -> Chain:
    return Chain(make_genesis_state(KEYS, stakes), KEYS)


def by_key(times: list[int]) -> dict[Address, int]:
    return {k.address: t for k, t in zip(KEYS, times, strict=True)}


def test_the_first_block_is_one_millisecond_after_genesis() -> None:
    chain = new_chain()
    assert chain.next_block().header.time_ms == chain.state.last_block_time_ms + 1


def test_a_block_takes_the_median_of_its_last_commits_times() -> None:
    chain = new_chain()
    times = [START + 10, START + 20, START + 30, START + 40]
    chain.commit(chain.next_block(), times=by_key(times))
    block = chain.next_block()
    assert block.header.time_ms == START + 20  # the lower median of four equal stakes
    assert chain.commit(block).last_block_time_ms == START + 20


def test_a_minority_of_wrong_clocks_cannot_move_the_time_outside_the_honest_ones() -> None:
    chain = new_chain()
    honest = [START, START + 5, START + 9]
    far_future = START + 10**9
    times = by_key([*honest, far_future])
    chain.commit(chain.next_block(), times=times)
    assert min(honest) <= chain.next_block().header.time_ms <= max(honest)


def test_stake_weighs_in_the_median() -> None:
    chain = new_chain(stakes=[100, 100, 100, 1000])
    times = [START, START + 1, START + 2, START + 500]
    chain.commit(chain.next_block(), times=by_key(times))
    assert chain.next_block().header.time_ms == START + 500


def test_time_never_goes_back_even_when_clocks_do() -> None:
    chain = new_chain()
    chain.commit(chain.next_block(), times={k.address: START for k in KEYS})
    chain.commit(chain.next_block(), times={k.address: START - 60_000 for k in KEYS})
    first = chain.state.last_block_time_ms
    assert chain.next_block().header.time_ms == first + 1


def test_a_block_with_another_time_is_invalid() -> None:
    chain = new_chain()
    chain.commit(chain.next_block(), times={k.address: START for k in KEYS})
    block = chain.next_block()
    forged = replace(block, header=replace(block.header, time_ms=TimeMs(block.header.time_ms + 1)))
    with pytest.raises(InvalidBlock, match="BFT time"):
        process_block(chain.state, forged, chain.verifier)


@given(
    st.lists(st.integers(0, 10**12), min_size=4, max_size=4),
    st.lists(st.integers(100, 10_000), min_size=4, max_size=4),
)
def test_the_weighted_median_is_one_of_the_times_with_half_the_stake_on_each_side(
    times: list[int], stakes: list[int]
) -> None:
    state = make_genesis_state(KEYS, stakes)
    chain = Chain(state, KEYS)
    block = chain.next_block()
    times = [t or 1 for t in times]  # 0: no time
    chain.commit(block, times=by_key(times))
    assert chain.last_commit is not None
    median = compute_weighted_median_time(chain.last_commit, state.validators)
    assert median is not None
    power = dict.fromkeys(times, 0)
    for t, s in zip(times, stakes, strict=True):
        power[t] += s
    half = -(-sum(stakes) // 2)
    assert sum(p for t, p in power.items() if t < median) <= half
    assert sum(p for t, p in power.items() if t > median) <= half
    assert compute_block_time(chain.state, chain.last_commit) >= median
