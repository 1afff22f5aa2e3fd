"""The gateway's front: what every HTTP request passes through once, before any route.

One ASGI layer does what used to take a middleware each (a coroutine and a ``send`` wrapper
per request for each): the access line, the dashboard's separate origin, the API rate limit,
and the sandbox of every answer under ``/webhook-waiting``. Resume URLs, the hottest path, then
go straight to their endpoint (``gateway.routes.webhook.ResumeEndpoint``), which answers its
own errors; everything else goes through Starlette's stack (its error middleware, exception
handlers and router). Trusted proxies and tracing, when configured, sit in front of it.
"""

from __future__ import annotations

import time

from starlette._utils import get_route_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import logs
from gateway.access_log import log_request, logging_requests
from gateway.answers import PREFIX, RESUME_PATHS, sandbox
from gateway.http import ApiError, error_response, internal_error, scope_client
from gateway.ratelimit import Limits
from gateway.ui_origin import UiOrigin


class Front:
    """ASGI middleware: the access line, the UI origin, the API rate limit and the answers'
    sandbox, in one pass; resume URLs to ``resume``, the rest to ``app``."""

    def __init__(self, app: ASGIApp, resume: ASGIApp, ui_origin: UiOrigin | None) -> None:
        self.app = app
        self.resume = resume
        self.ui_origin = ui_origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request, log it once answered."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        line = logs.request_line() if logging_requests() else None
        path = get_route_path(scope)
        sandboxed = path.startswith(PREFIX)
        status = 0

        async def front_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if sandboxed:
                    sandbox(message)
            await send(message)

        try:
            if self.ui_origin is not None and self.ui_origin.misdirected(scope):
                await error_response(404, "Not Found")(scope, receive, front_send)
            elif path.startswith(RESUME_PATHS):
                await self.resume(scope, receive, front_send)
            elif not (path.startswith("/api/") and await _api_limited(scope, receive, front_send)):
                await self.app(scope, receive, front_send)
        except Exception:
            if not status:  # the one error shape, sandboxed where it must be; then logged
                await internal_error()(scope, receive, front_send)
            raise
        finally:
            if line is not None:
                log_request(scope, status or 500, started, line)


async def _api_limited(scope: Scope, receive: Receive, send: Send) -> bool:
    """Whether the caller has used up its API calls (then answered 429 here)."""
    limits: Limits | None = getattr(scope["app"].state, "limits", None)
    if limits is None or not limits.api.enabled:
        return False
    try:
        limits.api_call(scope_client(scope))
    except ApiError as exc:
        await exc.response()(scope, receive, send)
        return True
    return False
