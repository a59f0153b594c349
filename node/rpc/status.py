"""What ``learnchain query status`` shows of a running node."""

from __future__ import annotations

from collections.abc import Callable

from learnchain.consensus.engine import Engine
from learnchain.consensus.params import SCORE_UNIT
from learnchain.consensus.state import ChainState
from learnchain.consensus.types import Address
from learnchain.consensus.upgrades import get_known_upgrades
from learnchain.node.learning.app_interface import OwnEvaluation
from learnchain.proto import learnchain_pb2 as pb
from learnchain.proto.wire import (
    learning_to_proto,
    upgrade_plan_to_proto,
    upgrade_signals_to_proto,
)


class StatusReporter:
    """Builds the Status response from the parts of a node."""

    def __init__(
        self,
        node_id: Address,
        moniker: str,
        engine: Engine,
        committed: Callable[[], ChainState],
        connected_peers: Callable[[], int],
        syncing: Callable[[], bool],
        metric: str = "",
        own_evaluation: Callable[[], OwnEvaluation | None] = lambda: None,
    ) -> None:
        self._metric = metric
        self._own_evaluation = own_evaluation
        self._node_id = node_id
        self._moniker = moniker
        self._engine = engine
        self._committed = committed
        self._connected_peers = connected_peers
        self._syncing = syncing

    def get_status(self) -> pb.StatusResponse:
        """The last block written to the store, and where consensus is."""
        state = self._committed()
        response = pb.StatusResponse(
            chain_id=state.chain_id,
            node_id=self._node_id.hex(),
            height=state.height,
            latest_block_hash=state.last_block_hash,
            model_hash=state.model_hash,
            peers=self._connected_peers(),
            syncing=self._syncing(),
            moniker=self._moniker,
            round=self._engine.round,
            step=int(self._engine.step),
            learning=learning_to_proto(state.learning),
            metric=self._metric,
            upgrade_signals=upgrade_signals_to_proto(state.upgrade_signals),
            known_upgrades=get_known_upgrades(),
        )
        if state.upgrade_plan is not None:
            response.upgrade_plan.CopyFrom(upgrade_plan_to_proto(state.upgrade_plan))
        own = self._own_evaluation()
        if own is not None:
            response.own_evaluation.CopyFrom(
                pb.NodeEvaluation(
                    score=own.score / SCORE_UNIT, accuracy=own.accuracy, loss=own.loss
                )
            )
        return response
