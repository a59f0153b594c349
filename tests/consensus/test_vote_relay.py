"""Vote relay (ChainParams.vote_relay_from): from that many validators on, a vote for a block goes
to the round's proposer, which relays the votes it counts to everyone. Safety must not depend on
it, and neither may liveness: a proposer that does not relay costs only gossip resends."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from learnchain.consensus.engine import Engine
from learnchain.consensus.events import (
    Broadcast,
    GossipTick,
    ProposalContent,
    ProposalReceived,
    RelayVote,
    TimeoutFired,
    VoteReceived,
)
from learnchain.consensus.messages import SignedProposal, SignedVote, Vote
from learnchain.consensus.params import ChainParams
from learnchain.consensus.simulation import (
    Behaviour,
    Crash,
    Partition,
    SimulationConfig,
    compute_genesis,
    compute_key,
    run_simulation,
)
from learnchain.consensus.state import compute_genesis_state
from learnchain.consensus.types import Round, Signature, Step, Threshold, VoteType

VALIDATORS = 8


def make_engines(relay_from: int = VALIDATORS) -> list[Engine]:
    """One engine per validator of an 8-validator chain (relaying from ``relay_from``)."""
    keys = [compute_key(0, i) for i in range(VALIDATORS)]
    params = ChainParams(vote_relay_from=relay_from)
    state = compute_genesis_state(compute_genesis(keys, [100] * VALIDATORS, params, "relay"))
    engines = [Engine(state, key) for key in keys]
    for engine in engines:
        engine.start()
    return engines


def get_hub(engines: list[Engine], round_: int = 0) -> Engine:
    """The engine of round ``round_``'s proposer."""
    proposer = engines[0].get_proposer(round_)
    return next(e for e in engines if e.address == proposer)


def propose(hub: Engine) -> ProposalReceived:
    """The hub's proposal for round 0 (an empty block), as its peers receive it."""
    actions = hub.handle(ProposalContent(hub.height, Round(0), (), hub.state.model_hash))
    proposal = next(a.message for a in actions if isinstance(a, Broadcast))
    assert isinstance(proposal, SignedProposal)
    return ProposalReceived(proposal)


def get_others(engines: list[Engine], hub: Engine) -> list[Engine]:
    """Every engine but the hub's."""
    return [e for e in engines if e is not hub]


def own_votes(actions: Sequence[object]) -> list[Broadcast]:
    return [a for a in actions if isinstance(a, Broadcast) and isinstance(a.message, SignedVote)]


def vote_of(broadcast: Broadcast) -> Vote:
    """The vote a Broadcast of an own vote carries."""
    assert isinstance(broadcast.message, SignedVote)
    return broadcast.message.vote


def relays(actions: Sequence[object]) -> list[RelayVote]:
    return [a for a in actions if isinstance(a, RelayVote)]


def prevote_on(voter: Engine, proposal: ProposalReceived) -> SignedVote:
    """The prevote ``voter`` signs on receiving ``proposal``."""
    vote = own_votes(voter.handle(proposal))[0].message
    assert isinstance(vote, SignedVote)
    return vote


def test_a_vote_for_a_block_goes_to_the_rounds_proposer_alone() -> None:
    engines = make_engines()
    hub = get_hub(engines)
    proposal = propose(hub)
    voter = get_others(engines, hub)[0]
    sent = own_votes(voter.handle(proposal))
    assert [(vote_of(b).vote_type, b.to) for b in sent] == [(VoteType.PREVOTE, hub.address)]


def test_the_proposer_sends_its_own_vote_to_everyone() -> None:
    engines = make_engines()
    hub = get_hub(engines)
    propose(hub)
    # its prevote went out with the proposal content above; the hub's resends say the same
    sent = own_votes(hub.handle(GossipTick(hub.height, Round(0))))
    assert sent and all(b.to is None for b in sent)


def test_nil_votes_and_gossip_resends_go_to_everyone() -> None:
    engines = make_engines()
    hub = get_hub(engines)
    voter = get_others(engines, hub)[0]
    nil = own_votes(voter.handle(TimeoutFired(voter.height, Round(0), Step.PROPOSE)))
    assert [(vote_of(b).block_hash, b.to) for b in nil] == [(None, None)]
    voter2 = get_others(engines, hub)[1]
    assert own_votes(voter2.handle(propose(hub)))[0].to == hub.address
    resent = own_votes(voter2.handle(GossipTick(voter2.height, Round(0))))
    assert resent and all(b.to is None for b in resent)


def test_below_the_relay_size_every_vote_goes_to_everyone() -> None:
    engines = make_engines(relay_from=VALIDATORS + 1)
    hub = get_hub(engines)
    voter = get_others(engines, hub)[0]
    assert [b.to for b in own_votes(voter.handle(propose(hub)))] == [None]
    engines = make_engines(relay_from=0)
    hub = get_hub(engines)
    voter = get_others(engines, hub)[0]
    assert [b.to for b in own_votes(voter.handle(propose(hub)))] == [None]


def test_the_proposer_relays_each_counted_block_vote_once() -> None:
    engines = make_engines()
    hub = get_hub(engines)
    proposal = propose(hub)
    voter = get_others(engines, hub)[0]
    vote = prevote_on(voter, proposal)
    assert relays(hub.handle(VoteReceived(vote))) == [RelayVote(vote)]
    assert not relays(hub.handle(VoteReceived(vote)))


def test_only_the_rounds_proposer_relays_and_never_a_forged_vote() -> None:
    engines = make_engines()
    hub = get_hub(engines)
    proposal = propose(hub)
    voter, other = get_others(engines, hub)[:2]
    vote = prevote_on(voter, proposal)
    other.handle(proposal)
    assert not relays(other.handle(VoteReceived(vote)))
    forged = SignedVote(vote.vote, Signature(bytes(64)))
    fresh = get_hub(make_engines())
    propose(fresh)
    assert not relays(fresh.handle(VoteReceived(forged)))


def test_nil_votes_are_not_relayed() -> None:
    engines = make_engines()
    hub = get_hub(engines)
    voter = get_others(engines, hub)[0]
    nil = own_votes(voter.handle(TimeoutFired(voter.height, Round(0), Step.PROPOSE)))[0].message
    assert isinstance(nil, SignedVote)
    assert not relays(hub.handle(VoteReceived(nil)))


def test_a_vote_already_counted_is_not_verified_again() -> None:
    engines = make_engines()
    hub = get_hub(engines)
    proposal = propose(hub)
    voter = get_others(engines, hub)[0]
    vote = prevote_on(voter, proposal)
    hub.handle(VoteReceived(vote))
    checks = hub.verifier.checks
    hub.handle(VoteReceived(vote))
    assert hub.verifier.checks == checks


def test_the_relay_size_is_part_of_the_chain_parameters() -> None:
    assert ChainParams(vote_relay_from=8).encode() != ChainParams(vote_relay_from=0).encode()
    with pytest.raises(ValueError, match="vote_relay_from"):
        ChainParams(vote_relay_from=-1).validate()


# --- over a simulated network --------------------------------------------------------------


def relayed(config: SimulationConfig, relay_from: int = 8) -> SimulationConfig:
    return dataclasses.replace(config, params=ChainParams(vote_relay_from=relay_from))


@pytest.mark.parametrize("seed", range(5))
def test_relayed_votes_commit_every_height_in_its_first_round(seed: int) -> None:
    # The relay adds one hop per vote; it must never cost a round. (Its gain, fewer and larger
    # gossip messages, is the node's: bench/commit_rate.py.)
    config = SimulationConfig(validators=16, heights=150, seed=seed)
    direct = run_simulation(relayed(config, relay_from=0))
    relay = run_simulation(relayed(config))
    assert direct.forks == relay.forks == 0
    assert direct.heights >= 150 and relay.heights >= 150
    assert relay.max_rounds == 1
    assert relay.sim_seconds < 2 * direct.sim_seconds


@pytest.mark.parametrize("seed", range(5))
def test_proposers_that_never_relay_cost_gossip_resends_not_liveness(seed: int) -> None:
    result = run_simulation(
        relayed(
            SimulationConfig(
                validators=10,
                heights=100,
                byzantine=3,
                behaviours=frozenset({Behaviour.NO_RELAY}),
                seed=seed,
            )
        )
    )
    assert result.forks == 0
    assert result.heights >= 100
    assert result.proposals_by_validator[7:] != [0, 0, 0]  # the withholders did propose


@pytest.mark.parametrize("seed", range(5))
def test_relay_under_drops_partitions_crashes_and_equivocators_never_forks(seed: int) -> None:
    result = run_simulation(
        relayed(
            SimulationConfig(
                validators=10,
                heights=300,
                byzantine=3,
                drop=0.1,
                partitions=(
                    Partition(3_000, 9_000, (frozenset(range(6)), frozenset(range(6, 10)))),
                ),
                crashes=(Crash(1, 12_000, 4_000),),
                seed=seed,
            )
        )
    )
    assert result.forks == 0
    assert result.heights >= 300
    assert result.poisoned_committed == 0
    assert result.slashed == [7, 8, 9]


def test_half_threshold_with_relay_and_crashes_never_forks() -> None:
    result = run_simulation(
        relayed(
            SimulationConfig(
                validators=9,
                heights=300,
                threshold=Threshold(1, 2),
                crashes=(Crash(2, 2_000, 3_000), Crash(5, 6_000, 2_000)),
                drop=0.05,
                seed=3,
            )
        )
    )
    assert result.forks == 0
    assert result.heights >= 300
