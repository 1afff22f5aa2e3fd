"""The access log: one line per request, with resume URL signatures redacted.

Resume URLs carry their secret in ``?signature=``; the access log keeps the path and the other
parameters but never that value (nor API keys, which travel in headers and are not logged).
"""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class AccessLog:
    """ASGI middleware logging method, redacted target, status and duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Log after the response has started."""
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            client = scope.get("client")
            log.info(
                "%s %s %s",
                scope["method"],
                redacted_target(scope["path"], scope.get("query_string", b"")),
                status,
                extra={
                    "action": "http.request",
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "client": client[0] if client else None,
                },
            )
