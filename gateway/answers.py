"""What an engine may put into the answer a resume caller gets, and what every answer under
``/webhook-waiting`` carries whatever it holds.

Those answers are written by engines (any key with ``execution:write``, of any project) but
served on the gateway's own origin, next to the dashboard. So they run no script (CSP
``sandbox``: an opaque origin, no scripts, no forms, no popups), are never sniffed into another
type, and may not set cookies, change how the connection is framed, or relax or add the
origin's security headers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated

from msgspec import Meta
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.domain import AnswerKind
from gateway.errors import InvalidInput

PREFIX = "/webhook-waiting"
ANSWER_POLICY = "sandbox"
"""The CSP of every engine-controlled answer."""
CONFIRM_POLICY = "sandbox allow-forms; frame-ancestors 'none'"
"""The CSP of the gateway's own confirmation page: its form may post, nothing may run."""
CONFIRM_KIND: AnswerKind = "confirm"
"""The kind of the one answer under ``/webhook-waiting`` whose headers are the gateway's own."""
FORBIDDEN_HEADERS = frozenset(
    {
        # state the answer would leave on the gateway's origin
        "set-cookie",
        "set-cookie2",
        "clear-site-data",
        "strict-transport-security",
        "alt-svc",
        "nel",
        "report-to",
        "reporting-endpoints",
        "service-worker-allowed",
        # framing of the HTTP message (hop-by-hop and length)
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-length",
        # the answer's isolation, which the gateway sets itself
        "content-security-policy",
        "content-security-policy-report-only",
        "x-content-type-options",
        "x-frame-options",
        "cross-origin-opener-policy",
        "cross-origin-embedder-policy",
        "cross-origin-resource-policy",
        "permissions-policy",
        # the gateway's own marker of a replayed answer
        "idempotent-replayed",
    }
)
FORBIDDEN_PREFIXES = ("proxy-", "access-control-")
BODILESS = frozenset({204, 304})
"""Final status codes whose answer never carries a body."""
StatusCode = Annotated[int, Meta(ge=200, le=599)]
"""A final status an engine may ask for."""
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VALUE = re.compile(r"[\t\x20-\x7e]*")


def forbidden(name: str) -> bool:
    """Whether an engine may not set the header ``name`` on an answer."""
    lower = name.lower()
    return lower in FORBIDDEN_HEADERS or lower.startswith(FORBIDDEN_PREFIXES)


def check_headers(field: str, headers: Mapping[str, str]) -> dict[str, str]:
    """Headers an engine asks for, checked; a 400 naming the first one that is refused."""
    seen: set[str] = set()
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or not _VALUE.fullmatch(value):
            raise InvalidInput(
                f"{field} has an invalid header {name!r}: names are HTTP tokens, values "
                "printable ASCII"
            )
        if forbidden(name):
            raise InvalidInput(
                f"{field} may not set {name!r}: cookies, hop-by-hop, length and security "
                "headers of an answer are the gateway's own"
            )
        if name.lower() in seen:
            raise InvalidInput(f"{field} names the header {name!r} twice")
        seen.add(name.lower())
    return dict(headers)


def check_bodiless(field: str, status: int, has_body: bool) -> None:
    """No body with a 204 or 304 answer."""
    if status in BODILESS and has_body:
        raise InvalidInput(f"{field} {status} answers carry no body; leave the body out")


def sendable(headers: Mapping[str, str]) -> dict[str, str]:
    """Stored answer headers without the refused ones (kept by a version that allowed them)."""
    return {k: v for k, v in headers.items() if not forbidden(k)}


class AnswerPolicy:
    """ASGI middleware: every answer under ``/webhook-waiting`` is sandboxed and ``nosniff``.

    Its one place: whichever route, error handler or replay produced the answer. Only the
    gateway's confirmation page keeps its own, as strict, policy that lets its form post.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; set the headers of answers under the prefix."""
        if scope["type"] != "http" or not str(scope["path"]).startswith(PREFIX):
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                own = headers.get("content-security-policy") == CONFIRM_POLICY
                headers["content-security-policy"] = CONFIRM_POLICY if own else ANSWER_POLICY
                headers["x-content-type-options"] = "nosniff"
            await send(message)

        await self.app(scope, receive, send_with_policy)
