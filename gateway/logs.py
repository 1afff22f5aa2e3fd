"""Logging: one line per event with a stable ``action`` name; JSON when not on a terminal.

One configuration (``log_config``) serves waitgate's own loggers, uvicorn's (handed to
``uvicorn.run``) and any other library's, so that when JSON is chosen every line on stderr is
JSON, each with a timezone-aware ISO 8601 ``time``.
"""

from __future__ import annotations

import json
import logging
import logging.config
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_HIDDEN = {"color_message"}
"""Extras that repeat the message for a terminal (uvicorn's colored copy)."""


def timestamp(record: logging.LogRecord) -> str:
    """When the record was made: ISO 8601 in UTC with its offset, to the millisecond
    (``2026-11-28T21:03:00.123+00:00``)."""
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and k not in _HIDDEN}


class JsonFormatter(logging.Formatter):
    """A JSON object per record, with every ``extra`` field."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line."""
        line: dict[str, Any] = {
            "time": timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_extras(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable: time, level, action, message, extras."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one readable line."""
        extras = _extras(record)
        action = extras.pop("action", "-")
        tail = " ".join(f"{k}={v}" for k, v in extras.items())
        text = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {action:<22} "
        text += record.getMessage() + (f" {tail}" if tail else "")
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def log_config(level: str = "info") -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of a gateway process, also given to uvicorn: every
    record on stderr, as text on a terminal and as JSON otherwise."""
    formatter = TextFormatter if sys.stderr.isatty() else JsonFormatter
    chosen = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"waitgate": {"()": f"{__name__}.{formatter.__name__}"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "waitgate",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "waitgate": {"handlers": ["stderr"], "level": chosen, "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": chosen, "propagate": False},
            "uvicorn.error": {"level": chosen},
            "uvicorn.access": {"level": chosen},
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
    }


def configure_logging(level: str = "info") -> None:
    """Send every log record to stderr, as JSON unless stderr is a terminal."""
    logging.config.dictConfig(log_config(level))
