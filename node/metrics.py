"""Prometheus metrics, all prefixed ``learnchain_``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

OVERHEAD_BUCKETS = (
    0.005,
    0.01,
    0.015,
    0.02,
    0.025,
    0.03,
    0.04,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    1,
    2,
    5,
)


class Metrics:
    """One node's metrics on its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.height = Gauge("learnchain_height", "Last committed height", registry=r)
        self.round = Gauge("learnchain_round", "Current consensus round", registry=r)
        self.rounds_per_height = Histogram(
            "learnchain_rounds_per_height",
            "Rounds a height needed",
            buckets=(1, 2, 3, 5, 8, 13),
            registry=r,
        )
        self.block_interval = Histogram(
            "learnchain_block_interval_seconds",
            "Time between commits",
            buckets=(*OVERHEAD_BUCKETS, 10),
            registry=r,
        )
        self.learner_seconds = Histogram(
            "learnchain_learner_seconds",
            "Time this node's learner worked (train, evaluate, aggregate, check) per block",
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.round_overhead = Histogram(
            "learnchain_round_overhead_seconds",
            "Time between commits minus this node's learner work in it",
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.votes = Counter("learnchain_votes_total", "Votes received", ["type"], registry=r)
        self.relayed_votes = Counter(
            "learnchain_relayed_votes_total",
            "Votes this node relayed to its peers as the proposer of their round",
            registry=r,
        )
        self.model_score = Gauge(
            "learnchain_model_score",
            "This validator's score of the committed model on its vote set (accuracy, or -loss)",
            registry=r,
        )
        self.model_updates = Counter(
            "learnchain_model_updates_total", "Committed model updates", registry=r
        )
        self.peers = Gauge("learnchain_peers", "Connected peers", registry=r)
        self.rejected = Counter(
            "learnchain_rejected_messages_total", "Messages refused", ["reason"], registry=r
        )

    def serve(self, address: str) -> None:
        """Expose the metrics over HTTP at ``host:port``."""
        host, _, port = address.rpartition(":")
        start_http_server(int(port), addr=host, registry=self.registry)
