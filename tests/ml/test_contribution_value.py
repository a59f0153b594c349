"""Leave-one-out values (ml/contribution_value.py): what a validator reports for each
contribution of a block, and the chain settles rewards and deposits on."""

from __future__ import annotations

import pytest
import torch

from learnchain.ml.adversaries import ByzantineLearner
from learnchain.ml.aggregate import Contribution
from learnchain.ml.config import Aggregation
from learnchain.ml.contribution_value import compute_leave_one_out_values
from learnchain.ml.learner import Learner
from tests.ml.test_learning import make_learner

Honest = tuple[dict[str, torch.Tensor], list[Contribution]]


@pytest.fixture(scope="module")
def judge() -> Learner:
    return make_learner(4, "dirichlet:0.5")


@pytest.fixture(scope="module")
def base_and_honest() -> Honest:
    learners = [make_learner(i, "dirichlet:0.5") for i in range(4)]
    base = learners[0].current()
    return base, [Contribution(str(i), x.propose(), x.samples) for i, x in enumerate(learners)]


def test_a_lone_contribution_is_worth_its_improvement_over_the_current_model(
    judge: Learner, base_and_honest: Honest
) -> None:
    base, honest = base_and_honest
    (value,) = compute_leave_one_out_values(base, honest[:1], judge.score, Aggregation.CLIPPED_MEAN)
    assert value == pytest.approx(judge.score(honest[0].state) - judge.score(base))


def test_a_poisoned_contribution_is_worth_less_than_nothing_and_honest_ones_more(
    judge: Learner, base_and_honest: Honest
) -> None:
    base, honest = base_and_honest
    flipper = ByzantineLearner(judge.task, judge.data, "label_flip", seed=3)
    flipped = Contribution("9", flipper.propose(), flipper.samples)
    *honest_values, poisoned_value = compute_leave_one_out_values(
        base, [*honest, flipped], judge.score, Aggregation.CLIPPED_MEAN
    )
    assert poisoned_value < -0.01
    assert sum(honest_values) > 0


def test_an_untrained_copy_of_the_model_is_worth_about_nothing(
    judge: Learner, base_and_honest: Honest
) -> None:
    base, honest = base_and_honest
    copy = Contribution("9", {k: v.clone() for k, v in base.items()}, 200)
    values = compute_leave_one_out_values(
        base, [*honest, copy], judge.score, Aggregation.CLIPPED_MEAN
    )
    assert values[-1] <= 0.005
    assert values[-1] < max(values[:-1])
