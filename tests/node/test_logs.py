"""Log lines carry an ISO-8601 UTC time and the fields that apply (height, round, hash, peer),
as JSON objects or as text with key=value; peers going down and coming back are logged once."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime

import pytest

from learnchain.node.p2p.peers import Peer
from learnchain.node.telemetry.logs import make_formatter, read_text_fields


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    yield stream, handler
    root.removeHandler(handler)
    root.setLevel(old_level)


def emit(captured: tuple[io.StringIO, logging.Handler], log_format: str) -> str:
    stream, handler = captured
    handler.setFormatter(make_formatter(log_format))
    logging.getLogger("learnchain.node").info(
        "committed block", extra={"height": 7, "round": 1, "hash": "ab" * 32}
    )
    return stream.getvalue().strip()


def test_a_json_line_has_the_time_level_logger_message_and_fields(
    captured: tuple[io.StringIO, logging.Handler],
) -> None:
    line = json.loads(emit(captured, "json"))
    assert list(line)[:4] == ["time", "level", "logger", "msg"]
    assert line["msg"] == "committed block"
    assert (line["height"], line["round"], line["hash"]) == (7, 1, "ab" * 32)
    assert line["time"].endswith("Z")
    assert datetime.fromisoformat(line["time"]).tzinfo is not None


def test_a_text_line_starts_with_the_time_and_reads_back_as_fields(
    captured: tuple[io.StringIO, logging.Handler],
) -> None:
    line = emit(captured, "text")
    datetime.fromisoformat(line.split()[0])
    assert "[info" in line and "committed block" in line
    assert read_text_fields(line) == {"height": "7", "round": "1", "hash": "ab" * 32}


def test_a_peer_going_down_and_coming_back_is_logged_once_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def flap() -> None:
        peer = Peer("127.0.0.1:9")
        for connected in (True, True, False, False, True):
            peer.connected = connected
        await peer.close()

    with caplog.at_level(logging.INFO, logger="learnchain.peers"):
        asyncio.run(flap())
    said = [(r.getMessage(), getattr(r, "peer", None)) for r in caplog.records]
    assert said == [
        ("peer up", "127.0.0.1:9"),
        ("peer down", "127.0.0.1:9"),
        ("peer up", "127.0.0.1:9"),
    ]
