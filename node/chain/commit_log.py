"""What an operator sees of each written block: the commit metrics and the log line."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from learnchain.consensus.events import CommitBlock
from learnchain.consensus.learning_record import LearningRecord
from learnchain.consensus.params import SCORE_UNIT, ChainParams, TrainingEnd
from learnchain.consensus.state import ChainState
from learnchain.consensus.types import Address
from learnchain.node.home.files import format_time_ms
from learnchain.node.telemetry.metrics import Metrics

log = logging.getLogger("learnchain.node")


class CommitLog:
    """A commit listener that updates the metrics and logs model updates."""

    def __init__(
        self,
        metrics: Metrics,
        learner_busy_seconds: Callable[[], float],
        own: Address,
        block_bytes: Callable[[], int],
    ) -> None:
        self._metrics = metrics
        self._block_bytes = block_bytes
        self._busy_seconds = learner_busy_seconds
        self._own = own
        self._last_commit_time = time.monotonic()
        self._busy_at_last_commit = learner_busy_seconds()

    def on_commit(self, action: CommitBlock, previous: ChainState) -> None:
        """Record one written block."""
        block, metrics = action.block, self._metrics
        now = time.monotonic()
        log.debug("committed at", extra={"height": block.height, "at": now})
        metrics.height.set(block.height)
        metrics.rounds_per_height.observe(action.commit.round + 1)
        metrics.block_interval.observe(now - self._last_commit_time)
        busy_total = self._busy_seconds()
        busy = busy_total - self._busy_at_last_commit
        self._busy_at_last_commit = busy_total
        metrics.learner_seconds.observe(busy)
        metrics.round_overhead.observe(max(0.0, now - self._last_commit_time - busy))
        self._last_commit_time = now
        record_block(metrics, action, previous, self._own, self._block_bytes())
        learning, before = action.state.learning, previous.learning
        model_changed = block.header.model_hash != previous.model_hash
        if model_changed:
            metrics.model_updates.inc()
        fields: dict[str, object] = {
            "height": block.height,
            "round": action.commit.round,
            "hash": block.hash.hex(),
            "time": format_time_ms(block.header.time_ms),
            "proposer": block.header.proposer.hex(),
            "signers": f"{len(action.commit.signatures)}/{len(previous.validators.validators)}",
            "txs": len(block.txs),
            "model": block.header.model_hash.hex(),
            "model_updated": model_changed,
        }
        if learning.scored_height != before.scored_height and learning.scored is not None:
            fields["scored_height"] = learning.scored_height  # the validators' median score
            fields["score"] = round(learning.scored / SCORE_UNIT, 4)
        if block.rejections:
            fields["rejected_rounds"] = ",".join(str(r.proposal.round) for r in block.rejections)
        if block.evidence:
            fields["evidence_against"] = ",".join(
                e.vote_a.vote.validator.hex()[:12] for e in block.evidence
            )
        log.info("committed block", extra=fields)
        before_set = {v.address for v in previous.validators.validators}
        after_set = {v.address for v in action.state.validators.validators}
        if before_set != after_set:
            log.info(
                "validator set changed",
                extra={
                    "height": block.height,
                    "left": ",".join(sorted(a.hex()[:12] for a in before_set - after_set)),
                    "joined": ",".join(sorted(a.hex()[:12] for a in after_set - before_set)),
                },
            )
        if before.is_training() and not learning.is_training():
            log.info(
                "training ended: %s",
                describe_training_end(learning, action.state.params),
                extra={"height": block.height},
            )


def record_block(
    metrics: Metrics, action: CommitBlock, previous: ChainState, own: Address, block_bytes: int
) -> None:
    """CometBFT's per-block consensus metrics, and the learning ones a block tells;
    ``block_bytes``: the block's encoded size, as the store wrote it."""
    block, state = action.block, action.state
    signers = {s.validator for s in action.commit.signatures}
    signing_set = previous.validators  # the set that decided this block
    missing = [v for v in signing_set.validators if v.address not in signers]
    metrics.missing_validators.set(len(missing))
    metrics.missing_validators_power.set(sum(v.power for v in missing))
    byzantine = {e.vote_a.vote.validator for e in block.evidence}
    metrics.byzantine_validators.set(len(byzantine))
    metrics.byzantine_validators_power.set(sum(signing_set.get_power(a) for a in byzantine))
    metrics.validators.set(len(state.validators.validators))
    metrics.validators_power.set(state.validators.total_power)
    metrics.validator_power.set(state.validators.get_power(own))
    if own in signers:
        metrics.validator_last_signed_height.set(block.height)
    elif signing_set.get_power(own):
        metrics.validator_missed_blocks.inc()
    metrics.num_txs.set(len(block.txs))
    metrics.total_txs.inc(len(block.txs))
    metrics.block_size.set(block_bytes)
    metrics.contributions.inc(len(block.contributions))
    metrics.rejected_proposals.inc(len(block.rejections))
    learning = state.learning
    if learning.scored_height != previous.learning.scored_height and learning.scored is not None:
        metrics.chain_score.set(learning.scored / SCORE_UNIT)


def describe_training_end(learning: LearningRecord, params: ChainParams) -> str:
    """Why training ended, in words."""
    best = "none" if learning.best_score is None else f"{learning.best_score / SCORE_UNIT:.4f}"
    match learning.end:
        case TrainingEnd.BUDGET:
            return f"budget (training_heights {params.training_heights})"
        case TrainingEnd.TARGET:
            target = (params.target_score or 0) / SCORE_UNIT
            return f"target (score {best} reached {target:.4f})"
        case TrainingEnd.PLATEAU:
            return (
                f"plateau (no improvement of {params.min_improvement / SCORE_UNIT:g} in "
                f"{params.plateau_rounds} updates; best score {best})"
            )
        case _:
            return "training goes on"
