"""The demo never races the pruning of the models it scores: node 0 keeps every model the demo
may report, and a model gone anyway is reported unscored rather than ending the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from learnchain.node.cli.demo import keep_reported_models, score_model
from learnchain.node.home.files import read_config
from learnchain.node.localnet.cluster import LocalCluster


class Failing(grpc.RpcError):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


class FailingNode:
    """Node 0 answering every model fetch with ``code``."""

    def __init__(self, code: grpc.StatusCode) -> None:
        self.error = Failing(code)

    def fetch_model(self, model_hash: bytes = b"") -> bytes:
        raise self.error


def test_a_model_already_pruned_is_not_scored_and_ends_nothing() -> None:
    net: Any = {0: FailingNode(grpc.StatusCode.NOT_FOUND)}
    assert score_model(net, b"\x01" * 32, task=None, test=None) is None


def test_other_errors_still_surface() -> None:
    net: Any = {0: FailingNode(grpc.StatusCode.UNAVAILABLE)}
    with pytest.raises(Failing):
        score_model(net, b"\x01" * 32, task=None, test=None)


def test_node0_keeps_every_model_the_demo_may_report(tmp_path: Path) -> None:
    net = LocalCluster(tmp_path / "net", 2)
    keep_reported_models(net, 300)
    assert read_config(net[0].home).retain_models >= 300
