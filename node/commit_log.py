"""What an operator sees of each written block: the commit metrics and the log line."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from consensus.events import CommitBlock
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
        if block.header.model_hash != previous.model_hash:
            metrics.model_updates.inc()
            log.info(
                "height %d: model update %s from %s",
                block.height,
                block.header.model_hash.hex()[:12],
                block.header.proposer.hex()[:12],
            )
