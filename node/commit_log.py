"""What an operator sees of each written block: the commit metrics and the log line."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from consensus.events import CommitBlock
from consensus.learning_record import LearningRecord
from consensus.params import SCORE_UNIT, ChainParams, TrainingEnd
from consensus.state import ChainState
from node.metrics import Metrics

log = logging.getLogger("learnchain.node")


class CommitLog:
    """A commit listener that updates the metrics and logs model updates."""

    def __init__(
        self,
        metrics: Metrics,
        learner_busy_seconds: Callable[[], float],
        connected_peers: Callable[[], int],
    ) -> None:
        self._metrics = metrics
        self._busy_seconds = learner_busy_seconds
        self._connected_peers = connected_peers
        self._last_commit_time = time.monotonic()
        self._busy_at_last_commit = learner_busy_seconds()

    def on_commit(self, action: CommitBlock, previous: ChainState) -> None:
        """Record one written block."""
        block, metrics = action.block, self._metrics
        now = time.monotonic()
        log.debug("committed height %d at %.6f", block.height, now)
        metrics.height.set(block.height)
        metrics.rounds_per_height.observe(action.commit.round + 1)
        metrics.block_interval.observe(now - self._last_commit_time)
        busy_total = self._busy_seconds()
        busy = busy_total - self._busy_at_last_commit
        self._busy_at_last_commit = busy_total
        metrics.learner_seconds.observe(busy)
        metrics.round_overhead.observe(max(0.0, now - self._last_commit_time - busy))
        metrics.peers.set(self._connected_peers())
        self._last_commit_time = now
        learning, before = action.state.learning, previous.learning
        if learning.scored_height != before.scored_height and learning.scored is not None:
            log.info(
                "height %d: the update of height %d scored %.4f (the validators' median)",
                block.height,
                learning.scored_height,
                learning.scored / SCORE_UNIT,
            )
        if block.header.model_hash != previous.model_hash:
            metrics.model_updates.inc()
            log.info(
                "height %d: model update %s from %s",
                block.height,
                block.header.model_hash.hex()[:12],
                block.header.proposer.hex()[:12],
            )
        if before.is_training() and not learning.is_training():
            log.info(
                "height %d: training ended: %s",
                block.height,
                describe_training_end(learning, action.state.params),
            )


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
