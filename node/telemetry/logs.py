"""The node's logs (structlog over the standard library's logging): text or JSON lines on
stderr, each with an ISO-8601 UTC time and the fields a call passes in ``extra`` (height, round,
hash, peer, ...)."""

from __future__ import annotations

import logging

import structlog

FIRST_KEYS = ("time", "level", "logger", "msg")  # then the fields, in the order given


def order_keys(
    _logger: object, _method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """Time, level, logger and message first, so that lines read alike."""
    first = {key: event.pop(key) for key in FIRST_KEYS if key in event}
    return {**first, **event}


# Attributes other formatters (pytest's, a second handler's) may have set on a record.
FORMATTER_ATTRIBUTES = ("message", "asctime")


def drop_formatter_attributes(
    _logger: object, _method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """Only the fields a call passed in ``extra``, not what another formatter added."""
    for key in FORMATTER_ATTRIBUTES:
        event.pop(key, None)
    return event


def compute_processors() -> list[structlog.typing.Processor]:
    """What every line goes through before it is rendered."""
    return [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        drop_formatter_attributes,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
        structlog.processors.format_exc_info,
    ]


def make_formatter(log_format: str) -> logging.Formatter:
    """A formatter that renders records as JSON objects or as aligned text with key=value."""
    final: list[structlog.typing.Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta
    ]
    if log_format == "json":
        final += [
            structlog.processors.EventRenamer("msg"),
            order_keys,
            structlog.processors.JSONRenderer(sort_keys=False),
        ]
    else:
        final.append(
            structlog.dev.ConsoleRenderer(
                colors=False, timestamp_key="time", pad_event_to=32, sort_keys=False
            )
        )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=compute_processors(), processors=final
    )


def setup_logging(log_format: str, level: str = "info") -> None:
    """Text or JSON-lines logs on stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(make_formatter(log_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def read_text_fields(line: str) -> dict[str, str]:
    """The key=value fields of a text log line (benches read them back)."""
    return dict(word.split("=", 1) for word in line.split() if "=" in word)
