"""Prometheus metrics: CometBFT's consensus, mempool, p2p and process families, and the learning
round's own, all under ``learnchain_`` and labelled with the chain id."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)

from learnchain.consensus.params import SCORE_UNIT

if TYPE_CHECKING:
    from learnchain.node.learning.app_interface import OwnEvaluation

NAMESPACE = "learnchain"
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
WORK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class ChainLabelled:
    """A labelled metric with the chain id filled in: ``labels(type=...)`` as usual."""

    def __init__(self, parent: Any, chain_id: str) -> None:
        self._parent = parent
        self._chain_id = chain_id

    def labels(self, **values: str) -> Any:
        """The child for these label values on this chain."""
        return self._parent.labels(chain_id=self._chain_id, **values)


class Metrics:
    """One node's metrics on its own registry."""

    def __init__(self, chain_id: str = "") -> None:
        self.registry = r = CollectorRegistry()
        ProcessCollector(namespace=NAMESPACE, registry=r)
        self.chain_id = chain_id

        def gauge(name: str, doc: str) -> Any:
            return Gauge(f"{NAMESPACE}_{name}", doc, ["chain_id"], registry=r).labels(chain_id)

        def counter(name: str, doc: str) -> Any:
            return Counter(f"{NAMESPACE}_{name}", doc, ["chain_id"], registry=r).labels(chain_id)

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Any:
            made = Histogram(f"{NAMESPACE}_{name}", doc, ["chain_id"], buckets=buckets, registry=r)
            return made.labels(chain_id)

        def labelled(
            kind: type, name: str, doc: str, label: str | tuple[str, ...], **more: Any
        ) -> ChainLabelled:
            labels = [label] if isinstance(label, str) else list(label)
            made = kind(f"{NAMESPACE}_{name}", doc, ["chain_id", *labels], registry=r, **more)
            return ChainLabelled(made, chain_id)

        # consensus (CometBFT: consensus_*)
        self.height = gauge("consensus_height", "Height of the last committed block")
        self.round = gauge("consensus_round", "Current consensus round")
        self.rounds_per_height = histogram(
            "consensus_rounds_per_height", "Rounds a height needed", (1, 2, 3, 5, 8, 13)
        )
        self.block_interval = histogram(
            "consensus_block_interval_seconds", "Time between commits", (*OVERHEAD_BUCKETS, 10)
        )
        self.round_overhead = histogram(
            "consensus_round_overhead_seconds",
            "Time between commits minus this node's learner work in it",
            OVERHEAD_BUCKETS,
        )
        self.validators = gauge("consensus_validators", "Validators of the next height")
        self.validators_power = gauge("consensus_validators_power", "Their total voting power")
        self.validator_power = gauge(
            "consensus_validator_power", "This node's voting power (0: not a validator)"
        )
        self.validator_last_signed_height = gauge(
            "consensus_validator_last_signed_height", "The last height this validator signed"
        )
        self.validator_missed_blocks = counter(
            "consensus_validator_missed_blocks", "Commits this validator's signature is not in"
        )
        self.missing_validators = gauge(
            "consensus_missing_validators", "Validators whose signature the last commit lacks"
        )
        self.missing_validators_power = gauge(
            "consensus_missing_validators_power", "Their voting power"
        )
        self.byzantine_validators = gauge(
            "consensus_byzantine_validators", "Validators with evidence in the last block"
        )
        self.byzantine_validators_power = gauge(
            "consensus_byzantine_validators_power", "Their voting power"
        )
        self.num_txs = gauge("consensus_num_txs", "Transactions in the last block")
        self.total_txs = counter("consensus_txs", "Transactions committed")
        self.block_size = gauge("consensus_block_size_bytes", "Size of the last block")
        self.block_syncing = gauge("consensus_block_syncing", "1 while catching up by block sync")
        self.votes = labelled(Counter, "consensus_votes", "Votes received", "type")
        self.relayed_votes = counter(
            "consensus_relayed_votes",
            "Votes this node relayed to its peers as the proposer of their round",
        )
        # mempool (CometBFT: mempool_*)
        self.mempool_size = gauge("mempool_size", "Transactions waiting in the mempool")
        # p2p (CometBFT: p2p_*)
        self.peers = labelled(Gauge, "p2p_peers", "Connected peers", "direction")
        self.rejected = labelled(
            Counter, "p2p_rejected_messages", "Messages refused, by reason", "reason"
        )
        # learning
        self.model_score = gauge(
            "learning_model_score",
            "This validator's score of the committed model on its vote set (accuracy, or -loss)",
        )
        self.model_accuracy = gauge(
            "learning_model_accuracy",
            "This validator's accuracy of the committed model on its vote set (any metric)",
        )
        self.model_loss = gauge(
            "learning_model_loss",
            "This validator's mean loss of the committed model on its vote set (any metric)",
        )
        self.chain_score = gauge(
            "learning_chain_score", "The validators' median score of the last scored update"
        )
        self.model_updates = counter("learning_model_updates", "Committed model updates")
        self.updates = labelled(
            Counter,
            "learning_updates",
            "This validator's verdicts on proposed model updates (approved, rejected, unverified:"
            " not the aggregation rule's output from the listed contributions)",
            "result",
        )
        self.contributions = counter(
            "learning_contributions", "Contributions included in committed blocks"
        )
        self.rejected_proposals = counter(
            "learning_rejected_proposals",
            "Proofs in committed blocks that the vote rejected a model update (its proposer"
            " forfeits a deposit)",
        )
        self.work_seconds = labelled(
            Histogram,
            "learning_work_seconds",
            "This node's ML work, by kind (train, evaluate, aggregate, check, accept)",
            "work",
            buckets=WORK_BUCKETS,
        )
        self.learner_seconds = histogram(
            "learning_learner_seconds",
            "Time this node's learner worked (train, evaluate, aggregate, check) per block",
            OVERHEAD_BUCKETS,
        )
        self.weights_bytes = labelled(
            Counter, "learning_weights_bytes", "Model weights sent or received", "direction"
        )
        self.unusable_weights = labelled(
            Counter,
            "learning_unusable_weights",
            "Contributions, proposals and models this node could not use (too_large: over the "
            "chain's max_weights_bytes; bad_weights: not the task's model or not their hash; "
            "unavailable: no peer had them)",
            ("what", "reason"),
        )

        self.training_failures = labelled(
            Counter,
            "learning_training_failures",
            "Trainings and evaluations the learner process failed (crash: it ended, killed or "
            "out of memory; error: the code raised); each costs a round's contribution or verdict",
            "reason",
        )

    def report_own_evaluation(self, own: OwnEvaluation) -> None:
        """This validator's score, accuracy and loss of the committed model."""
        self.model_score.set(own.score / SCORE_UNIT)
        self.model_accuracy.set(own.accuracy)
        self.model_loss.set(own.loss)

    def serve(self, address: str) -> None:
        """Expose the metrics over HTTP at ``host:port``."""
        host, _, port = address.rpartition(":")
        start_http_server(int(port), addr=host, registry=self.registry)
