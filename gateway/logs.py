"""Logging: one line per event with a stable ``action`` name; JSON when not on a terminal."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """A JSON object per record, with every ``extra`` field."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line."""
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable: time, level, action, message, extras."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one readable line."""
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        action = extras.pop("action", "-")
        tail = " ".join(f"{k}={v}" for k, v in extras.items())
        text = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {action:<22} "
        text += record.getMessage() + (f" {tail}" if tail else "")
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure_logging(level: str = "info") -> None:
    """Send waitgate's logs to stderr, as JSON unless stderr is a terminal."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter() if sys.stderr.isatty() else JsonFormatter())
    root = logging.getLogger("waitgate")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
