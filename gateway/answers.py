"""The answers a resume caller gets: how each is built (the wait's own, a held caller's, the
engine's explicit one), what an engine may put into it, and what every answer under
``/webhook-waiting`` carries whatever it holds.

Those answers are written by engines (any key with ``execution:write``, of any project) but
served on the gateway's own origin, next to the dashboard. So they run no script (CSP
``sandbox``: an opaque origin, no scripts, no forms, no popups), are never sniffed into another
type, and may not set cookies, change how the connection is framed, or relax or add the
origin's security headers.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from starlette.responses import Response
from starlette.types import Message

from gateway.domain import JSON, AnswerKind, Ending, StoredAnswer, WebhookSpec
from gateway.errors import InvalidInput
from gateway.http import error_body

PREFIX = "/webhook-waiting"
RESUME_PATHS = PREFIX + "/"
"""What the path of every call of a resume URL starts with."""
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
DEFAULT_RESPONSE = {"message": "Workflow was started"}
"""What a wait that configures no answer says to the call that resumed it (n8n's words)."""
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VALUE = re.compile(r"[\t\x20-\x7e]*")
_encoder = msgspec.json.Encoder()
MAX_DEFAULT_ANSWERS = 400
"""Every final status (200-599) fits: the default answer of each is made once."""
_DEFAULT_ANSWERS: dict[int, StoredAnswer] = {}
"""The answer of a wait that configures none, by its status (stored answers are never
changed in place)."""


def json_answer(
    status_code: int, body: JSON, kind: AnswerKind, headers: dict[str, str] | None = None
) -> StoredAnswer:
    """An answer with a JSON body."""
    return StoredAnswer(
        status_code,
        {"content-type": "application/json", **(headers or {})},
        _encoder.encode(body),
        kind,
    )


def configured_answer(spec: WebhookSpec) -> StoredAnswer:
    """The answer configured on the wait (``onReceived``)."""
    if spec.response_data is None and not spec.response_headers:
        default = _DEFAULT_ANSWERS.get(spec.response_code)
        if default is None:
            default = json_answer(spec.response_code, DEFAULT_RESPONSE, "answer")
            if len(_DEFAULT_ANSWERS) < MAX_DEFAULT_ANSWERS:
                _DEFAULT_ANSWERS[spec.response_code] = default
        return default
    data: Any = DEFAULT_RESPONSE if spec.response_data is None else spec.response_data
    headers = {k.lower(): v for k, v in spec.response_headers.items()}
    if isinstance(data, str):
        headers.setdefault("content-type", "text/plain; charset=utf-8")
        return StoredAnswer(spec.response_code, headers, data.encode())
    return json_answer(spec.response_code, data, "answer", headers)


def finished_answer(status: Ending, result: JSON, response_data: str) -> StoredAnswer:
    """What a lastNode caller gets when the engine finishes (n8n's ``responseData`` choices)."""
    if status != "success":
        return json_answer(500, error_body(500, "Error in workflow"), "finished")
    if response_data == "noData":
        return StoredAnswer(200, {}, b"", "finished")
    entries = result if isinstance(result, list) else [result]
    entries = [e["json"] if isinstance(e, dict) and set(e) >= {"json"} else e for e in entries]
    if response_data == "allEntries":
        return json_answer(200, entries, "finished")
    return json_answer(200, entries[0] if entries else {}, "finished")


def explicit_answer(status_code: int, headers: dict[str, str], body: Any) -> StoredAnswer:
    """What a responseNode caller gets from ``POST /executions/{id}/respond``.

    ``body`` may be a string (sent as is), ``{"binary": {"data": base64, "mimeType": …}}``
    (sent as those bytes), or any other JSON value (sent as JSON).
    """
    if isinstance(body, str):
        headers = {"content-type": "text/plain; charset=utf-8", **headers}
        return StoredAnswer(status_code, headers, body.encode(), "respond")
    if isinstance(body, dict) and isinstance(body.get("binary"), dict):
        binary = body["binary"]
        try:
            data = base64.b64decode(str(binary.get("data", "")), validate=True)
        except binascii.Error:
            raise InvalidInput("body.binary.data must be base64") from None
        mime = str(binary.get("mimeType") or "application/octet-stream")
        return StoredAnswer(status_code, {"content-type": mime, **headers}, data, "respond")
    return json_answer(status_code, body, "respond", headers)


def to_response(answer: StoredAnswer, method: str = "GET", *, replayed: bool = False) -> Response:
    """A stored answer as an HTTP response (``Idempotent-Replayed: true`` on a replay).

    Headers an engine may not set are left out, whenever the answer was stored; 204 and 304
    answers carry no body.
    """
    own = answer.kind == CONFIRM_KIND
    headers = dict(answer.headers) if own else sendable(answer.headers)
    if replayed:
        headers["idempotent-replayed"] = "true"
    media_type = headers.pop("content-type", None)
    body = b"" if method == "HEAD" or answer.status_code in BODILESS else answer.body
    return Response(body, status_code=answer.status_code, headers=headers, media_type=media_type)


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


def sandbox(start: Message) -> None:
    """Set the headers every answer under ``/webhook-waiting`` carries on its
    ``http.response.start`` message: sandboxed and ``nosniff``, whichever route, error handler
    or replay produced it. Only the gateway's confirmation page keeps its own, as strict, policy
    that lets its form post."""
    raw = start.get("headers", ())
    own = (_CSP, _CONFIRM_POLICY) in raw
    start["headers"] = [
        *((name, value) for name, value in raw if name.lower() not in _SANDBOX_HEADERS),
        (_CSP, _CONFIRM_POLICY if own else _ANSWER_POLICY),
        (b"x-content-type-options", b"nosniff"),
    ]


_CSP = b"content-security-policy"
_CONFIRM_POLICY = CONFIRM_POLICY.encode()
_ANSWER_POLICY = ANSWER_POLICY.encode()
_SANDBOX_HEADERS = frozenset({_CSP, b"x-content-type-options"})
