"""What the chain knows about training: the current model's height and recorded score, the best
score, and whether (and why) training has ended (docs/protocol.md §3.4).

Validators score every model update they precommit on their private vote sets and attach the
score to the precommit (a vote extension, as in CometBFT's ABCI++). The next block carries those
precommits as its last commit; applying it records the stake-weighted median of the scores as
the model's score. The median is what more than half of the scoring stake agrees the model at
least reaches, so validators holding less than half of it cannot move it past every honest one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from learnchain.consensus.encoding import encode_int, encode_uint
from learnchain.consensus.messages import Commit
from learnchain.consensus.params import ChainParams, TrainingEnd
from learnchain.consensus.types import Height
from learnchain.consensus.validators import ValidatorSet


@dataclass(frozen=True, slots=True)
class LearningRecord:
    """Training as the chain sees it after a block."""

    model_height: Height = Height(0)  # the block that set the current model (0: genesis)
    best_score: int | None = None  # the best score recorded so far
    stale_rounds: int = 0  # learning rounds (scored updates, failed attempts) since the best
    scored_height: Height = Height(0)  # the model height of the last recorded score
    scored: int | None = None  # the last recorded score (for history)
    end: TrainingEnd = TrainingEnd.NONE
    end_height: Height = Height(0)  # the first height whose block may not change the model

    @property
    def model_score(self) -> int | None:
        """The current model's recorded score, once recorded."""
        return (
            self.scored if self.model_height and self.scored_height == self.model_height else None
        )

    def is_training(self) -> bool:
        """True while blocks may change the model."""
        return self.end == TrainingEnd.NONE

    def encode(self) -> bytes:
        """Canonical bytes (part of the state root)."""
        return (
            encode_uint(self.model_height)
            + _encode_optional_int(self.best_score)
            + encode_uint(self.stale_rounds)
            + encode_uint(self.scored_height)
            + _encode_optional_int(self.scored)
            + encode_uint(self.end)
            + encode_uint(self.end_height)
        )


def _encode_optional_int(value: int | None) -> bytes:
    return b"\x00" if value is None else b"\x01" + encode_int(value)


def compute_weighted_median(scores: list[tuple[int, int]]) -> int:
    """The lower stake-weighted median of (score, power) pairs (at least one)."""
    ordered = sorted(scores)
    total = sum(power for _, power in ordered)
    reached = 0
    for score, power in ordered:
        reached += power
        if 2 * reached >= total:
            return score
    raise ValueError("no scores")


def compute_recorded_score(commit: Commit, validators: ValidatorSet) -> int | None:
    """The stake-weighted median of the scores in ``commit``, when validators holding more than
    half of the set's power scored; else None (too few scores to stand for the set)."""
    scores: list[tuple[int, int]] = []
    for sig in commit.signatures:
        validator = validators.get_validator(sig.validator)
        if sig.score is not None and validator is not None:
            scores.append((sig.score, validator.power))
    scoring_power = sum(power for _, power in scores)
    if 2 * scoring_power <= validators.total_power:
        return None
    return compute_weighted_median(scores)


def process_recorded_score(
    record: LearningRecord, params: ChainParams, score: int, model_height: Height, at: Height
) -> LearningRecord:
    """Record the current model's score; end training on the target or the plateau rule."""
    improved = record.best_score is None or score >= record.best_score + params.min_improvement
    best = score if record.best_score is None else max(record.best_score, score)
    record = replace(
        record,
        best_score=best,
        stale_rounds=0 if improved else record.stale_rounds + 1,
        scored_height=model_height,
        scored=score,
    )
    if params.target_score is not None and score >= params.target_score:
        return replace(record, end=TrainingEnd.TARGET, end_height=at)
    return process_plateau(record, params, at)


def is_failed_attempt(record: LearningRecord, previous_height: Height, last_commit: Commit) -> bool:
    """True when the last block kept the model after failed rounds: its update was voted down
    (or no proposer had one in time), as ``LearningApp.on_commit`` reads it too."""
    return record.model_height < previous_height and last_commit.round > 0


def process_failed_attempt(
    record: LearningRecord, params: ChainParams, at: Height
) -> LearningRecord:
    """Count a failed attempt as a learning round without improvement (the plateau rule), so
    that a model every update of which the validators reject ends training too."""
    return process_plateau(replace(record, stale_rounds=record.stale_rounds + 1), params, at)


def process_plateau(record: LearningRecord, params: ChainParams, at: Height) -> LearningRecord:
    """End training at ``at`` once ``plateau_rounds`` learning rounds brought no improvement."""
    if params.plateau_rounds and record.stale_rounds >= params.plateau_rounds:
        return replace(record, end=TrainingEnd.PLATEAU, end_height=at)
    return record


def compute_learning_record(
    record: LearningRecord,
    params: ChainParams,
    previous_height: Height,
    last_commit: Commit | None,
    last_validators: ValidatorSet,
) -> LearningRecord:
    """The record a block at ``previous_height + 1`` builds on, before its own model change:
    the previous block's model scored from the last commit, then the end rules."""
    height = Height(previous_height + 1)
    if record.is_training() and last_commit is not None:
        if record.model_height == previous_height > 0:  # the last block set the model
            score = compute_recorded_score(last_commit, last_validators)
            if score is not None:
                record = process_recorded_score(record, params, score, previous_height, height)
        elif is_failed_attempt(record, previous_height, last_commit):
            record = process_failed_attempt(record, params, height)
    if record.is_training() and not params.is_training_height(height):
        record = replace(record, end=TrainingEnd.BUDGET, end_height=height)
    return record


def compute_record_after_update(record: LearningRecord, height: Height) -> LearningRecord:
    """The record after a block at ``height`` changed the model: a new, unscored model."""
    return replace(record, model_height=height)
