"""The span of each HTTP request (kind server), added to the app only while tracing is on.

Named ``{method} {route}`` after the route template (``POST /webhook-waiting/{id}``), never
the path: ids, suffixes and, in the query, signatures would make every name unique and put
secrets in the trace. Attributes follow the HTTP semantic conventions except ``url.path``,
``url.query``, ``user_agent.original`` and headers, left out on purpose. A valid
``traceparent`` (checked by ``gateway.trace_context``, as strictly as what is kept) makes the
span its child; an invalid one is ignored.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.trace_context import TraceContext, from_raw

if TYPE_CHECKING:
    from gateway.otel import Tracing

KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
_CONVERTOR = re.compile(r"\{(\w+):\w+\}")


@functools.cache
def template(path: str) -> str:
    """A route's path as its template is written in the OpenAPI document (``{id:int}`` as
    ``{id}``)."""
    return _CONVERTOR.sub(r"{\1}", path)


def remote(context: TraceContext) -> Context:
    """A caller's (or a kept) context as the parent of new spans."""
    state = TraceState.from_header([context.state]) if context.state else None
    parent = SpanContext(
        trace_id=int(context.trace_id, 16),
        span_id=int(context.span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(context.flags),
        trace_state=state,
    )
    return trace.set_span_in_context(NonRecordingSpan(parent))


class HttpSpans:
    """ASGI middleware: one server span per HTTP request, current while the app answers it."""

    def __init__(self, app: ASGIApp, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the request inside its span; name it after the route once routed."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = from_raw(scope.get("headers", ()))
        method = scope["method"] if scope["method"] in KNOWN_METHODS else "_OTHER"
        client = scope.get("client")
        attributes: dict[str, str | int] = {
            "http.request.method": method,
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        if client:
            attributes["client.address"] = client[0]
        name = "HTTP" if method == "_OTHER" else method
        with self.tracing.tracer.start_as_current_span(
            name,
            context=Context() if given is None else remote(given),
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            status = 500
            failed = False

            async def record(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await self.app(scope, receive, record)
            except BaseException as exc:
                failed = True
                span.set_attribute("error.type", type(exc).__qualname__)
                span.set_status(Status(StatusCode.ERROR))
                raise
            finally:
                route = getattr(scope.get("route"), "path", None)
                if isinstance(route, str):
                    route = template(route)
                    span.set_attribute("http.route", route)
                    span.update_name(f"{name} {route}")
                span.set_attribute("http.response.status_code", status)
                if status >= 500 and not failed:
                    span.set_status(Status(StatusCode.ERROR))
                    span.set_attribute("error.type", str(status))
