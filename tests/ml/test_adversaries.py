"""The quiet attacks: a backdoor that keeps accuracy but sends triggered inputs to its target
class, and ALIE and IPM updates that stay within or just against the honest updates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learnchain.ml.adversaries import (
    BACKDOOR_TARGET,
    HONEST_ESTIMATES,
    ByzantineLearner,
    Collusion,
    add_trigger,
    compute_alie_state,
    compute_alie_z,
    compute_attack_listing,
    compute_backdoor_data,
    compute_ipm_state,
    compute_min_max_state,
    compute_triggered_test,
    flatten_updates,
    unflatten_update,
)
from learnchain.ml.codec import compute_weights_hash
from learnchain.ml.data import Dataset, load_digits_party
from learnchain.ml.learner import Learner
from learnchain.ml.parties import make_party_learners
from learnchain.ml.tasks import TaskConfig, get_task
from learnchain.ml.training import evaluate_state


def digits_learner(kind: str | None = None) -> tuple[Learner, Dataset]:
    """A learner on half the digits (honest, or the attack ``kind``) and the held-out test."""
    task = get_task(TaskConfig(seed=0))
    party, test = load_digits_party(0, 2, "iid", 0)
    learner = Learner(task, party, 1) if kind is None else ByzantineLearner(task, party, kind, 1)
    return learner, test


def byzantine(kind: str) -> ByzantineLearner:
    """An attacker of ``kind`` on half the digits."""
    learner, _ = digits_learner(kind)
    assert isinstance(learner, ByzantineLearner)
    return learner


def test_the_trigger_sets_the_last_features_to_the_maximum() -> None:
    x = np.random.default_rng(0).random((5, 64)).astype(np.float32)
    stamped = add_trigger(x)
    assert np.all(stamped[:, -4:] == x.max())
    assert np.array_equal(stamped[:, :-4], x[:, :-4])


def test_backdoor_data_relabels_a_tenth_of_the_samples_as_the_target() -> None:
    x = np.zeros((1000, 8), dtype=np.float32)
    x[:, 0] = 1.0
    train = Dataset(x, np.full(1000, 3, dtype=np.int64))
    poisoned = compute_backdoor_data(train, seed=0)
    relabelled = poisoned.y == BACKDOOR_TARGET
    assert 70 < relabelled.sum() < 130
    assert np.all(poisoned.x[relabelled][:, -4:] == 1.0)
    assert np.all(poisoned.x[~relabelled][:, -4:] == 0.0)


def test_the_triggered_test_set_leaves_out_the_target_class() -> None:
    test = Dataset(np.ones((4, 8), dtype=np.float32), np.array([0, 1, 2, 0], dtype=np.int64))
    triggered = compute_triggered_test(test)
    assert len(triggered) == 2 and set(triggered.y.tolist()) == {BACKDOOR_TARGET}


def test_a_backdoor_may_send_its_trigger_to_another_class() -> None:
    x = np.zeros((1000, 8), dtype=np.float32)
    x[:, 0] = 1.0
    poisoned = compute_backdoor_data(Dataset(x, np.zeros(1000, dtype=np.int64)), 0, target=2)
    relabelled = poisoned.y == 2
    assert 70 < relabelled.sum() < 130 and set(poisoned.y.tolist()) == {0, 2}
    test = Dataset(np.ones((4, 8), dtype=np.float32), np.array([0, 1, 2, 0], dtype=np.int64))
    triggered = compute_triggered_test(test, target=2)
    assert len(triggered) == 3 and set(triggered.y.tolist()) == {2}


def test_a_backdoored_model_keeps_its_accuracy_and_obeys_the_trigger() -> None:
    (honest, test), (attacker, _) = digits_learner(), digits_learner("backdoor")
    triggered = compute_triggered_test(test)
    clean_state, backdoored_state = honest.propose(), attacker.propose()
    clean = evaluate_state(honest.task, clean_state, test).accuracy
    assert evaluate_state(honest.task, backdoored_state, test).accuracy > clean - 0.1
    assert evaluate_state(honest.task, backdoored_state, triggered).accuracy > 0.8
    assert evaluate_state(honest.task, clean_state, triggered).accuracy < 0.3


def test_alie_shift_for_five_parties_and_one_attacker() -> None:
    assert compute_alie_z(5, 1) == pytest.approx(0.2533, abs=1e-3)


def updates() -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
    base = {"w": torch.zeros(100)}
    generator = torch.Generator().manual_seed(0)
    honest = [{"w": torch.randn(100, generator=generator) + 1.0} for _ in range(5)]
    return base, honest


def test_alie_stays_within_one_z_of_the_honest_mean() -> None:
    base, honest = updates()
    z = 0.5
    attack = compute_alie_state(base, honest, z)["w"]
    stacked = torch.stack([h["w"] for h in honest])
    mean, std = stacked.mean(0), stacked.std(0, unbiased=False)
    assert torch.allclose(attack, mean - z * std)


def test_ipm_points_against_the_honest_updates() -> None:
    base, honest = updates()
    attack = compute_ipm_state(base, honest, 0.5)["w"]
    mean = torch.stack([h["w"] for h in honest]).mean(0)
    assert float(attack @ mean) < 0
    assert float(attack.norm()) == pytest.approx(0.5 * float(mean.norm()), rel=1e-5)


@pytest.mark.parametrize("kind", ["alie", "ipm"])
def test_alie_and_ipm_attackers_propose_weights_of_the_models_shape(kind: str) -> None:
    attacker, _ = digits_learner(kind)
    proposed = attacker.propose()
    assert {k: v.shape for k, v in proposed.items()} == {
        k: v.shape for k, v in attacker.current().items()
    }
    assert all(torch.isfinite(v).all() for v in proposed.values())


def test_a_lazy_party_sends_the_current_model_back_untrained() -> None:
    data, _ = load_digits_party(0, 5, "iid", seed=0)
    lazy = ByzantineLearner(get_task(TaskConfig()), data, "lazy", seed=1)
    assert compute_weights_hash(lazy.propose()) == compute_weights_hash(lazy.current())


@pytest.mark.parametrize("kind", ["alie", "ipm"])
def test_colluders_pool_their_estimates_and_send_one_update(kind: str) -> None:
    task = get_task(TaskConfig(seed=0))
    collusion = Collusion()
    colluders = [
        ByzantineLearner(
            task, load_digits_party(i, 4, "dirichlet:0.5", 0)[0], kind, i, 1.0, 1.0, collusion
        )
        for i in range(2)
    ]
    first, second = (compute_weights_hash(c.propose()) for c in colluders)
    assert first == second
    assert len(collusion.get_estimates(colluders[0].current_hash())) == 2 * HONEST_ESTIMATES
    alone = ByzantineLearner(task, colluders[0].data, kind, 0)
    assert compute_weights_hash(alone.propose()) != first


def test_the_bench_parties_collude_only_when_two_or_more_share_an_attack_that_pools() -> None:
    parties = [load_digits_party(i, 7, "dirichlet:0.5", 0)[0] for i in range(7)]
    learners = make_party_learners(
        get_task(TaskConfig(seed=0)), parties, 0, ["ipm", "ipm", "alie", "backdoor"]
    )
    ipm = [x for x in learners if isinstance(x, ByzantineLearner) and x.kind == "ipm"]
    others = [x for x in learners if isinstance(x, ByzantineLearner) and x.kind != "ipm"]
    collusion = ipm[0].collusion
    assert collusion is not None and ipm[1].collusion is collusion
    assert collusion.members == ipm
    assert [x.collusion for x in others] == [None, None]  # a lone ALIE attacker, a backdoor


def test_a_poisoner_lists_its_colluders_then_the_fewest_honest_contributions_for_a_quorum() -> None:
    stakes = {"honest-a": 100, "honest-b": 100, "honest-c": 100, "bad": 100, "ally": 50}
    colluders = {"bad", "ally"}

    def is_quorum(listed: list[str]) -> bool:  # more than 2/3 of the stake
        return 3 * sum(stakes[c] for c in listed) > 2 * sum(stakes.values())

    listed = compute_attack_listing(list(stakes), colluders.__contains__, is_quorum)

    assert listed == ["bad", "ally", "honest-a", "honest-b"]
    assert is_quorum(listed) and not is_quorum(listed[:-1])


def test_colluders_holding_a_quorum_list_no_honest_contribution() -> None:
    listed = compute_attack_listing(["a", "b", "c"], lambda c: c != "a", lambda got: len(got) >= 2)
    assert listed == ["b", "c"]


def test_without_a_quorum_in_reach_a_poisoner_lists_every_contribution() -> None:
    listed = compute_attack_listing(["a", "b", "c"], lambda c: c == "c", lambda _: False)
    assert listed == ["c", "a", "b"]


def test_min_max_stays_within_the_honest_updates_largest_distance() -> None:
    base, honest = updates()
    attack = compute_min_max_state(base, honest, "min_max")
    deltas = flatten_updates(base, honest)
    own = flatten_updates(base, [attack])[0]
    assert (
        float((deltas - own).norm(dim=1).max()) <= float(torch.cdist(deltas, deltas).max()) + 1e-4
    )
    mean = deltas.mean(dim=0)
    assert float(own @ mean) < float(mean @ mean)  # pushed against the honest direction


def test_min_sum_stays_within_the_honest_updates_sum_of_squared_distances() -> None:
    base, honest = updates()
    attack = compute_min_max_state(base, honest, "min_sum")
    deltas = flatten_updates(base, honest)
    own = flatten_updates(base, [attack])[0]
    bound = float((torch.cdist(deltas, deltas) ** 2).sum(dim=1).max())
    assert float(((deltas - own).norm(dim=1) ** 2).sum()) <= bound * (1 + 1e-4)
    assert not torch.allclose(own, deltas.mean(dim=0))


def test_a_copycat_sends_a_seen_contribution_and_a_noisy_one_nearly_it() -> None:
    copycat, noisy = byzantine("copycat"), byzantine("noisy_copycat")
    honest, _ = digits_learner()
    seen = honest.propose()
    assert compute_weights_hash(copycat.propose()) == compute_weights_hash(copycat.current())
    copycat.see_contributions([seen])
    noisy.see_contributions([seen])
    assert compute_weights_hash(copycat.propose()) == compute_weights_hash(seen)
    shaken = noisy.propose()
    base = noisy.current()
    delta = flatten_updates(base, [seen])[0]
    apart = flatten_updates(base, [shaken])[0] - delta
    assert 0 < float(apart.norm()) < 0.05 * float(delta.norm())


def test_the_adaptive_attacker_reverses_the_honest_mean_within_the_margins() -> None:
    attacker = byzantine("adaptive")
    others = [digits_learner()[0].propose(seed) for seed in (1, 2)]
    attacker.see_contributions(others)
    base = attacker.current()
    mean = flatten_updates(base, others).mean(dim=0)
    sent = flatten_updates(base, [attacker.propose()])[0]
    assert float(sent @ mean) < float(mean @ mean)  # less than the honest step, or against it
    honest_score = attacker.score(unflatten_update(base, mean))
    gap = honest_score - attacker.score(unflatten_update(base, sent))
    config = attacker.task.config
    assert gap <= min(config.screen_margin, config.verified_margin) + 1e-9


def test_the_adaptive_attacker_turns_honest_near_the_reputation_cut_off() -> None:
    attacker = byzantine("adaptive")
    others = [digits_learner()[0].propose(seed) for seed in (1, 2)]
    attacker.see_contributions(others)
    attacker.reputation, attacker.reputation_cutoff = 0.0, 0.0
    base = attacker.current()
    sent = flatten_updates(base, [attacker.propose()])[0]
    assert torch.allclose(sent, flatten_updates(base, others).mean(dim=0), atol=1e-6)
