"""The learner's four verbs, the vote rule, robust aggregation, privacy and the task registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learnchain.ml.adversaries import ByzantineLearner
from learnchain.ml.aggregate import (
    AggregationRule,
    Contribution,
    aggregate_contributions,
    register_aggregation,
)
from learnchain.ml.codec import compute_weights_hash
from learnchain.ml.config import Aggregation, Metric
from learnchain.ml.data import load_digits_party
from learnchain.ml.errors import PrivacyBudgetExceeded, TaskError
from learnchain.ml.learner import Learner
from learnchain.ml.privacy import PrivacyLedger
from learnchain.ml.tasks import TASKS, Task, TaskConfig, get_task, register_task
from learnchain.ml.training import Evaluation
from learnchain.ml.vote import VoteRule


def make_learner(party: int = 0, partition: str = "iid", **config: object) -> Learner:
    data, _ = load_digits_party(party, 5, partition, seed=0)
    return Learner(get_task(TaskConfig(**config)), data, seed=party)  # type: ignore[arg-type]


def flat(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([state[k].reshape(-1) for k in sorted(state)])


# --- the learner ------------------------------------------------------------------------------


def test_propose_trains_from_the_global_model_and_leaves_it_unchanged() -> None:
    learner = make_learner()
    before = compute_weights_hash(learner.current())
    proposal = learner.propose()
    assert compute_weights_hash(learner.current()) == before
    assert compute_weights_hash(proposal) != before
    assert learner.evaluate(proposal).accuracy > learner.evaluate(learner.current()).accuracy + 0.3


def test_evaluate_leaves_the_global_model_unchanged_and_accept_replaces_it() -> None:
    learner = make_learner()
    proposal = learner.propose()
    before = compute_weights_hash(learner.current())
    learner.evaluate(proposal)
    learner.vote(proposal)
    assert compute_weights_hash(learner.current()) == before
    learner.accept(proposal)
    assert compute_weights_hash(learner.current()) == compute_weights_hash(proposal)


def test_proposals_are_deterministic_for_the_same_seed() -> None:
    a, b = make_learner(), make_learner()
    assert compute_weights_hash(a.propose(seed=5)) == compute_weights_hash(b.propose(seed=5))


def test_the_cnn_task_trains_too() -> None:
    learner = make_learner(name="digits-cnn", learning_rate=0.05)
    proposal = learner.propose()
    assert learner.evaluate(proposal).accuracy > learner.evaluate(learner.current()).accuracy


# --- the vote rule ----------------------------------------------------------------------------


def evaluation(correct: list[int], losses: list[float] | None = None) -> Evaluation:
    return Evaluation(
        np.array(correct, dtype=bool),
        np.array(losses if losses is not None else [0.5] * len(correct), dtype=np.float32),
    )


def test_a_learner_approves_an_improvement_and_rejects_poison() -> None:
    learner = make_learner()
    good = learner.propose()
    assert learner.vote(good).approve
    learner.accept(good)
    flipped = ByzantineLearner(learner.task, learner.data, "label_flip", seed=1)
    flipped.accept(good)
    assert not learner.vote(flipped.propose()).approve
    random_weights = ByzantineLearner(learner.task, learner.data, "random", seed=1).propose()
    assert not learner.vote(random_weights).approve


def test_identical_weights_are_approved() -> None:
    same = evaluation([1, 0, 1, 1])
    assert VoteRule().decide(same, same).approve


def test_one_disagreement_on_a_small_vote_set_is_within_noise() -> None:
    current = evaluation([1] * 20)
    candidate = evaluation([1] * 19 + [0])
    decision = VoteRule(confidence=1.0).decide(candidate, current)
    assert decision.improvement == pytest.approx(-0.05)
    assert decision.approve
    assert not VoteRule(confidence=0.0).decide(candidate, current).approve


def test_a_clear_drop_is_rejected_even_on_a_small_vote_set() -> None:
    current = evaluation([1] * 20)
    candidate = evaluation([1] * 10 + [0] * 10)
    assert not VoteRule(confidence=2.0).decide(candidate, current).approve


def test_the_margin_tolerates_a_small_known_drop() -> None:
    current = evaluation([1] * 100)
    candidate = evaluation([1] * 98 + [0] * 2)
    assert not VoteRule(confidence=0.0, margin=0.01).decide(candidate, current).approve
    assert VoteRule(confidence=0.0, margin=0.02).decide(candidate, current).approve


def test_the_loss_metric_compares_per_sample_losses() -> None:
    current = evaluation([1, 1, 1], [0.5, 0.5, 0.5])
    better = evaluation([1, 1, 1], [0.1, 0.2, 0.1])
    worse = evaluation([1, 1, 1], [2.0, 2.5, 3.0])
    assert VoteRule(metric=Metric.LOSS).decide(better, current).approve
    assert not VoteRule(metric=Metric.LOSS).decide(worse, current).approve


def test_non_finite_losses_and_empty_vote_sets_are_rejected() -> None:
    current = evaluation([1, 1], [0.5, 0.5])
    assert (
        not VoteRule(metric=Metric.LOSS)
        .decide(evaluation([1, 1], [float("nan"), 0.1]), current)
        .approve
    )
    assert not VoteRule().decide(evaluation([]), evaluation([])).approve


# --- aggregation --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def contributions() -> tuple[dict[str, torch.Tensor], list[Contribution]]:
    learners = [make_learner(i, "dirichlet:0.5") for i in range(4)]
    base = learners[0].current()
    return base, [Contribution(str(i), x.propose(), x.samples) for i, x in enumerate(learners)]


def test_aggregation_is_deterministic_whatever_the_order(contributions) -> None:  # type: ignore[no-untyped-def]
    base, honest = contributions
    a, used_a = aggregate_contributions(base, honest)
    b, used_b = aggregate_contributions(base, list(reversed(honest)))
    assert compute_weights_hash(a) == compute_weights_hash(b)
    assert used_a == used_b == ["0", "1", "2", "3"]


def test_a_nan_contribution_is_dropped(contributions) -> None:  # type: ignore[no-untyped-def]
    base, honest = contributions
    poisoned = Contribution(
        "9", {k: torch.full_like(v, float("nan")) for k, v in base.items()}, 100
    )
    state, used = aggregate_contributions(base, [*honest, poisoned])
    assert "9" not in used
    assert all(bool(torch.isfinite(v).all()) for v in state.values())


def test_a_scaled_contribution_is_clipped_to_the_median_update(contributions) -> None:  # type: ignore[no-untyped-def]
    base, honest = contributions
    huge = Contribution(
        "9", {k: base[k] + 1000 * (honest[0].state[k] - base[k]) for k in base}, 10**9
    )
    clean, _ = aggregate_contributions(base, honest)
    attacked, used = aggregate_contributions(base, [*honest, huge])
    assert "9" in used
    honest_norms = [float((flat(c.state) - flat(base)).norm()) for c in honest]
    assert float((flat(attacked) - flat(base)).norm()) <= max(honest_norms) * 1.01
    assert float((flat(attacked) - flat(clean)).norm()) <= max(honest_norms)


def test_screening_drops_a_label_flipped_contribution(contributions) -> None:  # type: ignore[no-untyped-def]
    base, honest = contributions
    judge = make_learner(0, "iid")
    flipper = ByzantineLearner(judge.task, judge.data, "label_flip", seed=3)
    flipped = Contribution("9", flipper.propose(), flipper.samples)
    _, used = aggregate_contributions(
        base, [*honest, flipped], Aggregation.SCREENED_MEAN, judge.score, 0.10
    )
    assert "9" not in used
    assert len(used) >= 3  # honest non-IID contributions survive the screen


@pytest.mark.parametrize("rule", [Aggregation.MEDIAN, Aggregation.TRIMMED_MEAN])
def test_coordinate_wise_rules_produce_finite_weights(contributions, rule: Aggregation) -> None:  # type: ignore[no-untyped-def]
    base, honest = contributions
    state, used = aggregate_contributions(base, honest, rule)
    assert len(used) == 4 and all(bool(torch.isfinite(v).all()) for v in state.values())


def test_server_momentum_adds_the_last_global_step(contributions) -> None:  # type: ignore[no-untyped-def]
    base, honest = contributions
    previous = {k: v - 0.01 for k, v in base.items()}  # the last step moved every weight by +0.01
    plain, _ = aggregate_contributions(base, honest)
    with_momentum, _ = aggregate_contributions(base, honest, momentum=0.5, previous_global=previous)
    for name in base:
        assert torch.allclose(with_momentum[name], plain[name] + 0.005, atol=1e-6)


def test_an_outer_learning_rate_scales_the_combined_step(contributions) -> None:  # type: ignore[no-untyped-def]
    base, honest = contributions
    previous = {k: v - 0.01 for k, v in base.items()}
    plain, _ = aggregate_contributions(base, honest)
    outer, _ = aggregate_contributions(
        base, honest, momentum=0.5, previous_global=previous, learning_rate=0.7
    )
    for name in base:
        step = plain[name] - base[name]
        assert torch.allclose(outer[name], base[name] + 0.7 * step + 0.005, atol=1e-6)


def test_with_nothing_usable_the_global_model_stays(contributions) -> None:  # type: ignore[no-untyped-def]
    base, _ = contributions
    state, used = aggregate_contributions(base, [])
    assert used == [] and compute_weights_hash(state) == compute_weights_hash(base)


# --- privacy ------------------------------------------------------------------------------------


def test_dp_training_is_charged_to_the_budget_and_refused_past_it() -> None:
    learner = make_learner(dp_noise_multiplier=1.0, dp_target_epsilon=10.0, local_epochs=1)
    assert learner.privacy is not None
    learner.propose()
    spent = learner.privacy.spent_epsilon
    assert 0 < spent <= 10.0
    with pytest.raises(PrivacyBudgetExceeded, match="past this node's budget of 10"):
        for _ in range(50):
            learner.propose()
    after_refusal = learner.privacy.spent_epsilon
    assert spent < after_refusal <= 10.0
    with pytest.raises(PrivacyBudgetExceeded):
        learner.propose()
    assert learner.privacy.spent_epsilon == after_refusal  # a refused run is not recorded


def test_a_ledger_records_nothing_when_it_refuses() -> None:
    ledger = PrivacyLedger(target_epsilon=0.1, delta=1e-5)
    with pytest.raises(PrivacyBudgetExceeded):
        ledger.charge(noise_multiplier=0.5, sample_rate=0.5, steps=100)
    assert ledger.spent_epsilon == 0.0


def test_dp_proposals_still_learn() -> None:
    learner = make_learner(dp_noise_multiplier=0.8, local_epochs=3)
    proposal = learner.propose()
    assert learner.evaluate(proposal).accuracy > learner.evaluate(learner.current()).accuracy + 0.2


# --- tasks --------------------------------------------------------------------------------------


def test_the_built_in_tasks_are_registered() -> None:
    assert {"digits-mlp", "digits-cnn", "tabular-mlp"} <= set(TASKS)


def test_adding_a_task_is_one_registered_class() -> None:
    @register_task
    class Tiny(Task):
        name = "tiny-linear"

        def build_model(self) -> torch.nn.Module:
            return torch.nn.Linear(64, 10)

    try:
        assert get_task(TaskConfig(name="tiny-linear")).initial_model()(
            torch.zeros(1, 64)
        ).shape == (1, 10)
    finally:
        TASKS.pop("tiny-linear")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "gpt"}, "unknown task 'gpt'"),
        ({"learning_rate": "fast"}, "task.learning_rate: expected float"),
        ({"hidden": 1.5}, "task.hidden: expected int"),
        ({"hidden": True}, "task.hidden: expected int"),
        ({"colour": "blue"}, "task.colour: unknown field"),
        ({"metric": "f1"}, "task.metric must be one of"),
        ({"aggregation": "mean"}, "task.aggregation must be one of"),
        ({"batch_size": 0}, "task.batch_size must be positive"),
        ({"margin": -0.1}, "task.margin must not be negative"),
        ({"server_momentum": 1.0}, "task.server_momentum must be below 1"),
        ({"server_learning_rate": 0}, "task.server_learning_rate must be positive"),
        ({"appraisal": "shapley"}, "task.appraisal must be one of exact, first_order"),
    ],
)
def test_a_bad_task_in_the_genesis_is_a_clear_error(data: dict[str, object], message: str) -> None:
    with pytest.raises(TaskError, match=message):
        TaskConfig.from_dict(data)


def test_a_task_config_round_trips_through_json_form() -> None:
    config = TaskConfig(name="digits-cnn", seed=7, margin=0.01)
    assert TaskConfig.from_dict(config.to_dict()) == config
    outer = TaskConfig(server_learning_rate=0.7)
    assert TaskConfig.from_dict(outer.to_dict()) == outer
    first_order = TaskConfig(appraisal="first_order")
    assert TaskConfig.from_dict(first_order.to_dict()) == first_order


def test_a_genesis_from_before_the_outer_learning_rate_keeps_its_hash() -> None:
    assert "server_learning_rate" not in TaskConfig().to_dict()
    assert "appraisal" not in TaskConfig().to_dict()


class FirstOnly(AggregationRule):
    """A user's rule: take the first contribution's update as it is (after clipping)."""

    name = "first-only"

    def combine(self, deltas: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        return deltas[0]


def test_a_users_aggregation_rule_is_found_by_name_once_registered(contributions) -> None:  # type: ignore[no-untyped-def]
    base, honest = contributions
    with pytest.raises(TaskError, match="unknown aggregation 'first-only'"):
        aggregate_contributions(base, honest, "first-only")
    register_aggregation(FirstOnly)
    by_name, used = aggregate_contributions(base, honest, "first-only")
    by_instance, _ = aggregate_contributions(base, honest, FirstOnly())
    assert used == ["0", "1", "2", "3"]
    assert all(torch.equal(by_name[k], by_instance[k]) for k in base)
    assert TaskConfig(aggregation="first-only").aggregation == "first-only"


def test_an_aggregation_rule_can_be_named_by_module_and_class(contributions) -> None:  # type: ignore[no-untyped-def]
    base, honest = contributions
    state, _ = aggregate_contributions(base, honest, "tests.ml.test_learning:FirstOnly")
    assert set(state) == set(base)
    with pytest.raises(
        TaskError, match=r"not a subclass of learnchain\.ml\.aggregate\.AggregationRule"
    ):
        aggregate_contributions(base, honest, "json:loads")
