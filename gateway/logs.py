"""Logging: one line per event with a stable ``action`` name; JSON when not on a terminal.

One configuration (``log_config``) serves waitgate's own loggers, uvicorn's (handed to
``uvicorn.run``) and any other library's, so that when JSON is chosen every line on stderr is
JSON, each with a timezone-aware ISO 8601 ``time``.

Logging at ``info`` is on the request path (an access-log line per request), so it is kept
cheap: records carry no caller, thread or process details (no line shows them), JSON is
encoded by msgspec, the lines of one event-loop turn reach stderr in one write, and the first
event a request makes (a resume) is written in that request's line instead of a line of its
own (``request_line``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import logging.config
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

import msgspec

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_HIDDEN = {"color_message"}
"""Extras that repeat the message for a terminal (uvicorn's colored copy)."""


_second: list[Any] = [None, ""]
"""The last whole second formatted, and its text up to the seconds (a one-entry cache)."""


def timestamp(record: logging.LogRecord) -> str:
    """When the record was made: ISO 8601 in UTC with its offset, to the millisecond
    (``2026-11-28T21:03:00.123+00:00``)."""
    return _iso(record.created)


def _iso(created: float) -> str:
    whole = int(created)
    if _second[0] != whole:
        text = datetime.fromtimestamp(whole, UTC).isoformat(timespec="seconds")
        _second[:] = [whole, text.removesuffix("+00:00")]
    millis = int((created - whole) * 1000)
    return f"{_second[1]}.{millis:03d}+00:00"


_NOT_EXTRA = frozenset(_STANDARD | _HIDDEN)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _NOT_EXTRA}


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
        try:
            return _json.encode(line).decode()
        except (TypeError, ValueError, RecursionError):  # whatever msgspec gives up on
            return json.dumps(line, default=str)


_json = msgspec.json.Encoder(enc_hook=str)
"""Anything JSON has no type for is logged as its ``str``."""


class TurnBatchedHandler(logging.StreamHandler[TextIO]):
    """A stream handler that writes the lines logged during one event-loop turn with one
    write, at the end of that turn; lines logged outside an event loop are written at once.

    A line reaches the stream microseconds after it was logged, in order; ``flush`` (called by
    ``logging.shutdown`` at exit) writes whatever is still pending."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._flush_on: asyncio.AbstractEventLoop | None = None
        """The loop a flush is scheduled on (a loop that stopped first never runs it)."""

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the formatted line for this turn's write (called with the handler's lock)."""
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._queue(line)

    def write_line(self, line: str) -> None:
        """Queue a line formatted already (see ``info``)."""
        self.acquire()
        try:
            self._queue(line)
        finally:
            self.release()

    def _queue(self, line: str) -> None:
        self._pending.append(line)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self._flush_on is not loop:
            self._flush_on = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write every pending line with one write."""
        self.acquire()
        try:
            self._flush_on = None
            if not self._pending:
                return
            text = "\n".join(self._pending) + "\n"
            self._pending.clear()
            try:
                self.stream.write(text)
                self.stream.flush()
            except Exception:
                self.handleError(logging.makeLogRecord({"msg": text}))
        finally:
            self.release()


def info(logger: logging.Logger, message: str, fields: dict[str, Any]) -> None:
    """``logger.info(message, extra=fields)`` for a line on the request path. When the logger
    writes through its parent straight to the JSON handler, as ``waitgate serve`` sets it up,
    the same line is encoded at once, without a ``LogRecord`` and the handler chain."""
    if not logger.isEnabledFor(logging.INFO):
        return
    handler = _json_handler(logger)
    if handler is None:
        logger.info(message, extra=fields)
        return
    line = {"time": _iso(time.time()), "level": "info", "logger": logger.name, "message": message}
    line.update(fields)
    handler.write_line(_json.encode(line).decode())


_request_line: ContextVar[dict[str, Any] | None] = ContextVar("waitgate_request_line", default=None)


def request_line() -> dict[str, Any]:
    """Open the line of the request being served (in its task's context): the fields an event
    of the request gives ``into_request_line`` are written in it. The caller writes the line and
    then leaves something in the dict, which closes it (a task the request started may outlive
    the line)."""
    fields: dict[str, Any] = {}
    _request_line.set(fields)
    return fields


def into_request_line(fields: dict[str, Any]) -> bool:
    """Put an event's fields (its ``action`` included) into the line of the request being
    served instead of a line of their own; ``False`` when there is no open line, or it holds an
    event already."""
    line = _request_line.get()
    if line is None or line:
        return False
    line.update(fields)
    return True


def _json_handler(logger: logging.Logger) -> TurnBatchedHandler | None:
    """The JSON handler a child of a configured logger writes to, if nothing else sees its
    records (no filter, no other handler, no propagation past the parent)."""
    parent = logger.parent
    if logger.handlers or logger.filters or not logger.propagate or parent is None:
        return None
    if parent.filters or parent.propagate or len(parent.handlers) != 1:
        return None
    handler = parent.handlers[0]
    if (
        type(handler) is not TurnBatchedHandler
        or type(handler.formatter) is not JsonFormatter
        or handler.filters
        or handler.level > logging.INFO
    ):
        return None
    return handler


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
                "()": f"{__name__}.TurnBatchedHandler",
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


def lean_records() -> None:
    """Make log records without the details no line shows: the caller's file and line, the
    thread, the process (the logging HOWTO's "Optimization" switches)."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def configure_logging(level: str = "info") -> None:
    """Send every log record to stderr, as JSON unless stderr is a terminal."""
    lean_records()
    logging.config.dictConfig(log_config(level))
