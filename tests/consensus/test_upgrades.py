"""Upgrades agreed on chain: validators signal a plan (name, height) with a transaction; the plan
is scheduled once the signallers hold more than the threshold of the power; at its height a build
that carries the plan applies its handler to the state and the chain goes on, and an engine whose
build lacks it halts before signing anything of that height."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learnchain.consensus import upgrades
from learnchain.consensus.engine import Engine, Phase
from learnchain.consensus.events import HaltForUpgrade, TimeoutFired
from learnchain.consensus.messages import TxKind
from learnchain.consensus.state import (
    ChainState,
    CheckState,
    InvalidTx,
    process_block,
)
from learnchain.consensus.types import Address, Height, Round, Step, Threshold
from learnchain.consensus.upgrades import (
    UpgradeNeeded,
    UpgradePlan,
    compute_scheduled_plan,
    is_valid_upgrade_name,
)
from tests.consensus.chain import Chain, make_genesis_state, make_keys, sign_tx, with_params

KEYS = make_keys(4)


def lengthen_unbonding(state: ChainState) -> ChainState:
    """A handler as a new build would carry: new parameters from the plan's height on."""
    return replace(
        state, params=replace(state.params, unbonding_blocks=state.params.unbonding_blocks + 7)
    )


@pytest.fixture
def carries_lengthen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(upgrades._HANDLERS, "lengthen-unbonding", lengthen_unbonding)


def signal(chain: Chain, keys: list, plan: UpgradePlan) -> ChainState:  # type: ignore[type-arg]
    txs = [
        sign_tx(k, TxKind.UPGRADE, chain.state.get_account(k.address).nonce, upgrade=plan)
        for k in keys
    ]
    return chain.advance(txs)


def test_a_plan_is_scheduled_only_once_more_than_the_threshold_of_power_signals_it() -> None:
    chain = Chain(make_genesis_state(KEYS), KEYS)
    plan = UpgradePlan("lengthen-unbonding", Height(10))
    state = signal(chain, KEYS[:2], plan)  # 2 of 4 equal validators: not more than 2/3
    assert state.upgrade_plan is None and set(state.upgrade_signals) == {
        k.address for k in KEYS[:2]
    }
    state = signal(chain, KEYS[2:3], plan)  # 3 of 4
    assert state.upgrade_plan == plan


def test_at_the_plan_height_the_handler_runs_once_and_the_chain_goes_on(
    carries_lengthen: None,
) -> None:
    chain = Chain(make_genesis_state(KEYS), KEYS)
    plan = UpgradePlan("lengthen-unbonding", Height(5))
    signal(chain, KEYS, plan)
    before = chain.state.params.unbonding_blocks
    while chain.state.height < 4:
        chain.advance()
    assert chain.state.params.unbonding_blocks == before and chain.state.upgrade_plan == plan
    state = chain.advance()  # height 5: the handler applies at the start of the block
    assert state.height == 5 and state.params.unbonding_blocks == before + 7
    assert state.upgrade_plan is None and state.upgrade_signals == {}
    assert chain.advance().params.unbonding_blocks == before + 7, "applied once"


def test_a_build_without_the_plan_cannot_apply_its_height(carries_lengthen: None) -> None:
    chain = Chain(make_genesis_state(KEYS), KEYS)
    signal(chain, KEYS, UpgradePlan("lengthen-unbonding", Height(3)))
    chain.advance()
    block = chain.next_block()  # made by a build that carries it
    upgrades._HANDLERS.pop("lengthen-unbonding")
    with pytest.raises(UpgradeNeeded, match="upgrade 'lengthen-unbonding' is needed at height 3"):
        process_block(chain.state, block, chain.verifier)


def test_a_plan_is_not_for_the_past_from_a_non_validator_or_malformed() -> None:
    outsider = make_keys(1, seed=9)[0]
    state = make_genesis_state(KEYS, accounts=[(outsider, 100)])
    check = CheckState(state, Chain(state, KEYS).verifier)
    with pytest.raises(InvalidTx, match="upgrade height 1 is not after this block"):
        check.apply(sign_tx(KEYS[0], TxKind.UPGRADE, 0, upgrade=UpgradePlan("v2", Height(1))))
    with pytest.raises(InvalidTx, match="only a validator signals an upgrade"):
        check.apply(sign_tx(outsider, TxKind.UPGRADE, 0, upgrade=UpgradePlan("v2", Height(9))))
    with pytest.raises(InvalidTx, match="names its plan"):
        check.apply(sign_tx(KEYS[0], TxKind.UPGRADE, 0, upgrade=UpgradePlan("V 2", Height(9))))
    with pytest.raises(InvalidTx, match="names its plan"):
        check.apply(sign_tx(KEYS[0], TxKind.UPGRADE, 0))


def test_signals_for_a_height_that_passed_are_dropped_and_a_later_quorum_replaces_a_plan() -> None:
    chain = Chain(make_genesis_state(KEYS), KEYS)
    signal(chain, KEYS[:1], UpgradePlan("early", Height(3)))
    chain.advance()
    assert chain.advance().upgrade_signals == {}, "a signal ends with its height"
    signal(chain, KEYS, UpgradePlan("first", Height(30)))
    state = signal(chain, KEYS, UpgradePlan("second", Height(40)))
    assert state.upgrade_plan == UpgradePlan("second", Height(40))


def test_without_signals_the_state_root_is_the_one_from_before_upgrades_existed() -> None:
    state = make_genesis_state(KEYS)
    signalled = replace(state, upgrade_signals={KEYS[0].address: UpgradePlan("v2", Height(9))})
    assert replace(signalled, upgrade_signals={}).compute_root() == state.compute_root()
    assert signalled.compute_root() != state.compute_root()


def test_an_engine_whose_build_lacks_the_plan_halts_at_its_height_and_ignores_everything() -> None:
    state = replace(
        make_genesis_state(KEYS, params=with_params()),
        upgrade_plan=UpgradePlan("v2", Height(1)),
    )
    engine = Engine(state, KEYS[0], knows_upgrade=lambda name: False)
    assert engine.start() == [HaltForUpgrade(UpgradePlan("v2", Height(1)))]
    assert engine.phase == Phase.HALTED
    assert engine.handle(TimeoutFired(Height(1), Round(0), Step.PROPOSE)) == []
    carrying = Engine(state, KEYS[0], knows_upgrade=lambda name: name == "v2")
    assert not any(isinstance(a, HaltForUpgrade) for a in carrying.start())


@settings(max_examples=200, deadline=None)
@given(
    powers=st.lists(st.integers(1, 50), min_size=1, max_size=8),
    choices=st.lists(st.integers(0, 2), min_size=8, max_size=8),
    two_thirds=st.booleans(),
)
def test_a_plan_is_scheduled_exactly_when_its_signallers_exceed_the_threshold(
    powers: list[int], choices: list[int], two_thirds: bool
) -> None:
    threshold = Threshold(2, 3) if two_thirds else Threshold(1, 2)
    plans = [UpgradePlan("a", Height(10)), UpgradePlan("b", Height(20))]
    addresses = [Address(bytes([i]) * 20) for i in range(len(powers))]
    signals = {a: plans[c] for a, c in zip(addresses, choices, strict=False) if c < 2}
    power = dict(zip(addresses, powers, strict=True))
    total = sum(powers)
    scheduled = compute_scheduled_plan(signals, lambda a: power[a], total, threshold)
    for plan in plans:
        signalled = sum(power[a] for a, p in signals.items() if p == plan)
        exceeds = signalled * threshold.denominator > total * threshold.numerator
        assert (scheduled == plan) == exceeds


@pytest.mark.parametrize(
    ("name", "valid"),
    [("v2", True), ("learnchain-0.3.0_rc1", True), ("", False), ("V2", False), ("a b", False)],
)
def test_upgrade_names_are_short_lower_case_words(name: str, valid: bool) -> None:
    assert is_valid_upgrade_name(name) is valid
    assert not is_valid_upgrade_name("a" * 65)
