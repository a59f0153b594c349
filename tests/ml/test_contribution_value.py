"""What a validator finds each contribution worth (ml/contribution_value.py): the number it
signs into its precommit, and the chain settles rewards and deposits on (docs/protocol.md §3.5)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from learnchain.ml.adversaries import ByzantineLearner
from learnchain.ml.aggregate import Contribution
from learnchain.ml.contribution_value import compute_contribution_values
from learnchain.ml.learner import Learner
from learnchain.ml.weights_file import TensorSource
from tests.ml.test_learning import make_learner

Honest = tuple[dict[str, torch.Tensor], list[Contribution]]
Loss = Callable[[dict[str, torch.Tensor]], float]
Gradient = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]
HARM_MARGIN = 0.10


@pytest.fixture(scope="module")
def judge() -> Learner:
    return make_learner(4, "dirichlet:0.5")


@pytest.fixture(scope="module")
def base_and_honest() -> Honest:
    learners = [make_learner(i, "dirichlet:0.5") for i in range(4)]
    trained = learners[0].propose()  # a round in, as the chain would be
    for learner in learners:
        learner.accept(trained)
    base = learners[0].current()
    return base, [Contribution(str(i), x.propose(), x.samples) for i, x in enumerate(learners)]


def appraise(
    judge: Learner, base: dict[str, torch.Tensor], made: list[Contribution]
) -> list[float]:
    return compute_contribution_values(base, made, judge.loss, judge.score, HARM_MARGIN)


def test_a_label_flipped_contribution_is_harmful_and_honest_ones_are_not(
    judge: Learner, base_and_honest: Honest
) -> None:
    base, honest = base_and_honest
    flipper = ByzantineLearner(judge.task, judge.data, "label_flip", seed=3)
    flipper.accept(base)
    flipped = Contribution("9", flipper.propose(), flipper.samples)
    *honest_values, poisoned = appraise(judge, base, [*honest, flipped])
    assert poisoned < -HARM_MARGIN
    assert sum(v >= 0 for v in honest_values) >= 3


def test_an_untrained_copy_of_the_model_is_worth_exactly_nothing(
    judge: Learner, base_and_honest: Honest
) -> None:
    base, honest = base_and_honest
    copy = Contribution("9", {k: v.clone() for k, v in base.items()}, 200)
    values = appraise(judge, base, [*honest, copy])
    assert values[-1] == 0.0
    assert max(values[:-1]) > 0


def test_values_follow_the_order_given_and_need_no_contributions(
    judge: Learner, base_and_honest: Honest
) -> None:
    base, honest = base_and_honest
    forward = appraise(judge, base, honest)
    backward = appraise(judge, base, list(reversed(honest)))
    # values are differences of float32 mean losses: another order of summing the updates
    # moves them by a few float32 steps of the loss (~3e-7), whatever torch's thread count
    assert forward == pytest.approx(list(reversed(backward)), abs=1e-6)
    assert appraise(judge, base, []) == []


def test_a_screened_out_contribution_is_harmful_by_the_same_test_or_worth_nothing(
    judge: Learner, base_and_honest: Honest
) -> None:
    """Left out of the aggregate, it has no gain; its harm is judged as if it had been
    aggregated: against the median of every contribution the block names."""
    base, honest = base_and_honest
    flipper = ByzantineLearner(judge.task, judge.data, "label_flip", seed=3)
    flipper.accept(base)
    flipped = Contribution("9", flipper.propose(), flipper.samples)
    listed = honest[:3]
    values = compute_contribution_values(
        base, listed, judge.loss, judge.score, HARM_MARGIN, screened=[honest[3], flipped]
    )
    assert sum(v >= 0 for v in values[:3]) >= 2  # one honest shard may look harmful here
    assert values[3] == 0.0
    assert values[4] < -HARM_MARGIN
    flipped_listed = appraise(judge, base, [*listed, honest[3], flipped])[4]
    assert values[4] == flipped_listed, "the same verdict as when aggregated"


def test_an_untrained_copy_screened_out_is_never_harmful(judge: Learner) -> None:
    """The rule of the aggregated ones: a copy of the model moves nothing, so however far below
    the others the model scores, leaving it out harms nobody."""
    learners = [make_learner(i, "dirichlet:0.5") for i in range(3)]
    base = learners[0].current()  # untrained: far below every trained contribution
    trained = [Contribution(str(i), x.propose(), x.samples) for i, x in enumerate(learners)]
    copy = Contribution("9", {k: v.clone() for k, v in base.items()}, 200)
    scores = sorted(judge.score(c.state) for c in trained)
    assert judge.score(base) < scores[1] - HARM_MARGIN, "the copy would fail the score test"
    values = compute_contribution_values(
        base, trained, judge.loss, judge.score, HARM_MARGIN, screened=[copy]
    )
    assert values[-1] == 0.0


def test_signed_values_go_below_zero_for_a_reversed_update_and_value_the_left_out(
    judge: Learner, base_and_honest: Honest
) -> None:
    base, honest = base_and_honest
    mean = {k: torch.stack([c.state[k] - base[k] for c in honest]).mean(0) for k in base}
    reversed_update = Contribution("8", {k: base[k] - 0.2 * mean[k] for k in base}, 200)
    no_harm = 1.0  # the harm test is not what this is about
    made = [*honest, reversed_update]
    values = compute_contribution_values(
        base, made, judge.loss, judge.score, no_harm, reputation=True
    )[len(made) :]  # the reputation values, after the settlement ones
    assert values[-1] < 0  # IPM-like: the aggregate's loss is lower without it
    floored = compute_contribution_values(base, made, judge.loss, judge.score, no_harm)
    assert floored[-1] == 0.0
    # left out of the aggregate, it is worth its gain had it been added: negative again, and an
    # honest contribution left out is worth more than it
    left_out = compute_contribution_values(
        base, honest[:3], judge.loss, judge.score, no_harm, [honest[3], reversed_update], True
    )[len(made) :]  # the same five named, three aggregated
    assert left_out[-1] < 0 and left_out[-2] > left_out[-1]


def copy_of(base: dict[str, torch.Tensor], made: Contribution, noise: float) -> Contribution:
    """A free rider's contribution: ``made`` sent again, with noise of ``noise`` spreads."""
    from learnchain.ml.adversaries import compute_noisy_copy

    return Contribution("9", compute_noisy_copy(base, made.state, 7, noise), made.samples)


@pytest.mark.parametrize("noise", [0.0, 0.01, 0.1])
def test_a_copy_that_arrived_later_is_worth_nothing_and_its_original_keeps_its_value(
    judge: Learner, base_and_honest: Honest, noise: float
) -> None:
    base, honest = base_and_honest
    own = appraise(judge, base, honest)
    original = honest[own.index(max(own))]  # the most useful contribution, copied
    made = [*honest, copy_of(base, original, noise)]
    arrival = [float(i) for i in range(len(made))]
    values = compute_contribution_values(
        base, made, judge.loss, judge.score, HARM_MARGIN, arrival=arrival, duplicate_margin=0.2
    )
    unaware = appraise(judge, base, made)
    assert unaware[-1] > 0, "without knowing the order, the copy earns like its original"
    assert values[-1] == 0.0
    assert values[:-1] == unaware[:-1], "the others, the original among them, keep their values"


def test_copies_are_found_by_arrival_and_distance_not_by_position(
    base_and_honest: Honest,
) -> None:
    from learnchain.ml.contribution_value import compute_copies, compute_update_gram
    from learnchain.ml.weights_file import StateSource, WeightsLayout

    base, honest = base_and_honest
    layout = WeightsLayout.of_state(base)
    named = [StateSource(c.state) for c in [*honest, copy_of(base, honest[0], 0.01)]]
    gram = compute_update_gram(StateSource(base), named, layout)
    in_order = [0.0, 1.0, 2.0, 3.0, 4.0]
    assert compute_copies(gram, in_order, 0.2) == [
        False,
        False,
        False,
        False,
        True,
    ]
    copy_first = [5.0, 1.0, 2.0, 3.0, 0.0]  # had the copy reached this validator first
    assert compute_copies(gram, copy_first, 0.2) == [
        True,
        False,
        False,
        False,
        False,
    ]
    assert compute_copies(gram, in_order, 0.0) == [False] * 5


def linear_loss(direction: dict[str, torch.Tensor]) -> tuple[Loss, Gradient]:
    """A loss linear in the weights, ``direction . w``, and its gradient (``direction``)."""

    def loss(state: dict[str, torch.Tensor]) -> float:
        return float(sum((direction[k].double() * state[k].double()).sum() for k in state))

    return loss, lambda state: {k: v.clone() for k, v in direction.items()}


def test_first_order_values_are_the_exact_ones_when_the_loss_is_linear(
    judge: Learner, base_and_honest: Honest
) -> None:
    """``task.appraisal = first_order``: each gain is ``-g . term`` with ``g`` the gradient at
    the aggregate; for a linear loss that is the gain itself, for the aggregated ones and for
    the screened-out ones' reputation values alike."""
    base, honest = base_and_honest
    generator = torch.Generator().manual_seed(5)
    direction = {k: torch.randn(v.shape, generator=generator) for k, v in base.items()}
    loss, gradient = linear_loss(direction)
    no_harm = 1.0
    exact = compute_contribution_values(
        base, honest[:3], loss, judge.score, no_harm, [honest[3]], reputation=True
    )
    first_order = compute_contribution_values(
        base, honest[:3], loss, judge.score, no_harm, [honest[3]], True, gradient=gradient
    )
    assert any(abs(v) > 1e-3 for v in exact)
    assert first_order == pytest.approx(exact, rel=1e-3, abs=1e-5)


def test_first_order_values_keep_the_exact_verdicts_on_digits(
    judge: Learner, base_and_honest: Honest
) -> None:
    """On a real loss the first-order gains estimate the exact ones from below (cross-entropy
    is convex in the logits, so the curvature the estimate leaves out adds to a gain): harm and
    copies are judged as before, an untrained copy is worth exactly 0, and each honest gain is
    positive and at most its exact value, plus float32's rounding."""
    base, honest = base_and_honest
    flipper = ByzantineLearner(judge.task, judge.data, "label_flip", seed=3)
    flipper.accept(base)
    untrained = Contribution("8", {k: v.clone() for k, v in base.items()}, 200)
    made = [*honest, untrained, Contribution("9", flipper.propose(), flipper.samples)]
    exact = appraise(judge, base, made)
    first_order = compute_contribution_values(
        base, made, judge.loss, judge.score, HARM_MARGIN, gradient=judge.loss_gradient
    )
    assert first_order[-2:] == [0.0, exact[-1]] and exact[-1] < -HARM_MARGIN
    for estimate, value in zip(first_order[:-2], exact[:-2], strict=True):
        assert 0 < estimate <= value + 1e-5 or estimate == value


@pytest.mark.parametrize("appraisal", ["exact", "first_order"])
def test_a_learner_appraises_as_its_task_says(base_and_honest: Honest, appraisal: str) -> None:
    from dataclasses import replace

    from learnchain.ml.tasks import get_task
    from learnchain.ml.weights_file import StateSource

    base, honest = base_and_honest
    learner = make_learner(4, "dirichlet:0.5")
    learner.accept(base)
    learner.task = get_task(replace(learner.task.config, appraisal=appraisal))
    expected = compute_contribution_values(
        base,
        honest,
        learner.loss,
        learner.score,
        learner.task.config.harm_margin,
        gradient=learner.loss_gradient if appraisal == "first_order" else None,
    )
    sources = [StateSource(c.state) for c in honest]
    assert learner.appraise(sources, len(sources)) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("appraisal", ["exact", "first_order"])
def test_top_k_updates_are_appraised_from_their_kept_values_as_from_every_value(
    judge: Learner, base_and_honest: Honest, appraisal: str
) -> None:
    """Updates a sparse codec encoded (``topk``) are appraised from their kept values alone (the
    aggregate, the copies' Gram matrix, the first-order dot products), and are worth what the
    same updates decoded whole are worth, to float32's rounding; a copy among them still 0."""
    from learnchain.ml.contribution_value import compute_values_of
    from learnchain.ml.error_feedback import ErrorFeedback
    from learnchain.ml.update_codec import DecodedContribution, parse_codec
    from learnchain.ml.weights_file import (
        StateSource,
        WeightsLayout,
        collect_state,
        iter_source,
    )

    base, honest = base_and_honest
    base_source = StateSource(base)
    layout = WeightsLayout.of_state(base)
    codec = parse_codec("topk:0.05")
    made = [*honest, honest[1]]  # the last a copy of the second, sent later

    def decoded(contribution: Contribution) -> DecodedContribution:
        encoded = ErrorFeedback(codec).encode(StateSource(contribution.state), base_source, layout)
        return DecodedContribution(base_source, StateSource(encoded), codec, layout)

    sparse = [decoded(c) for c in made]
    dense = [StateSource(collect_state(layout, iter_source(s, layout))) for s in sparse]

    def gradient(source: TensorSource) -> TensorSource:
        return StateSource(judge.loss_gradient(source))

    def values(named: list[TensorSource]) -> list[float]:
        return compute_values_of(
            base_source,
            named,
            3,  # two screened out, to be valued as had they been added
            judge.loss,
            judge.score,
            1.0,
            layout,
            lambda slices: StateSource(collect_state(layout, slices)),
            reputation=True,
            arrival=[float(i) for i in range(len(named))],
            duplicate_margin=0.2,
            gradient=gradient if appraisal == "first_order" else None,
        )

    from_kept, from_all = values(list(sparse)), values(list(dense))
    assert from_kept == pytest.approx(from_all, abs=1e-5)
    assert from_kept[len(made) - 1] == 0.0 and any(v > 0 for v in from_kept[:3])
