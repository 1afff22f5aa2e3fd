"""The access log: one line per request, with resume URL signatures redacted.

Resume URLs carry their secret in ``?signature=``; the access log keeps the path and the other
parameters but never that value (nor API keys, which travel in headers and are not logged).
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.types import Scope

from gateway import logs
from gateway.http import scope_client

log = logging.getLogger("waitgate.access")
SECRET_PARAMS = frozenset({"signature", "token", "api_key", "apikey"})
_SECRET_BYTES = frozenset(name.encode() for name in SECRET_PARAMS)


def redacted_target(path: str, query: bytes) -> str:
    """The request target with secret query values replaced by ``***``."""
    if not query:
        return path
    name, equals, _ = query.partition(b"=")
    if equals and b"&" not in query and name.isalnum() and name.lower() in _SECRET_BYTES:
        return f"{path}?{name.decode()}=***"  # one secret parameter (a resume URL): no parsing
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    shown = [(k, "***" if k.lower() in SECRET_PARAMS else v) for k, v in pairs]
    return f"{path}?{urlencode(shown, safe='*')}"


def log_request(
    scope: Scope, status: int, started: float, event: dict[str, Any] | None = None
) -> None:
    """The access line of one request (``started``: its ``time.perf_counter()``), with the
    ``event`` it made (``logs.request_line``), whose ``action`` names the line; the line is
    closed once written."""
    target = redacted_target(scope["path"], scope.get("query_string", b""))
    fields = {
        "action": "http.request",
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        "client": scope_client(scope),
    }
    if event is not None:
        fields.update(event)
        event["written"] = True
    logs.info(log, f"{scope['method']} {target} {status}", fields)


def logging_requests() -> bool:
    """Whether access lines are written (the ``info`` level is on)."""
    return log.isEnabledFor(logging.INFO)
