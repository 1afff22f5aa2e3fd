"""HTTP helpers: JSON answers, the error answer shape, bounded body reading, request decoding."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import msgspec
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Message, Scope

from gateway.errors import Conflict, InvalidInput, NotFound, StoreUnavailable, WaitgateError

T = TypeVar("T")
log = logging.getLogger("waitgate.http")
_encoder = msgspec.json.Encoder()


class JSONResponse(Response):
    """A JSON response encoded with msgspec."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Encode ``content`` as compact JSON."""
        return _encoder.encode(content)


def error_body(
    status: int, message: str, /, hint: str | None = None, **extra: Any
) -> dict[str, Any]:
    """Every error answer's body: ``{"message", "code"}`` (``code`` is the HTTP status, as n8n's
    webhook errors have it), ``hint`` when there is advice, then any extra fields a
    compatible answer keeps (n8n's ``error`` on a refused resume URL)."""
    body: dict[str, Any] = {"message": message, "code": status}
    if hint is not None:
        body["hint"] = hint
    return body | extra


def error_response(
    status: int,
    message: str,
    /,
    *,
    hint: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """An error answer in the one shape (``error_body``)."""
    return JSONResponse(
        error_body(status, message, hint, **extra), status_code=status, headers=headers
    )


class ApiError(Exception):
    """An error answer: its status, ``message``, an optional ``hint`` and any extra fields,
    sent in the one shape (``error_body``)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        hint: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.hint = hint
        self.headers = headers
        self.extra = extra

    def response(self) -> JSONResponse:
        """The JSON answer for this error."""
        return error_response(
            self.status, self.message, hint=self.hint, headers=self.headers, **self.extra
        )


MAX_LENGTH_DIGITS = 18


def declared_length(request: Request) -> int:
    """The ``Content-Length`` the caller declared, 0 if none or not a plain decimal number;
    more digits than any real body has count as larger than every limit."""
    declared = request.headers.get("content-length", "")
    if not (declared.isascii() and declared.isdigit()):
        return 0
    return int(declared) if len(declared) <= MAX_LENGTH_DIGITS else 10**MAX_LENGTH_DIGITS


def capped(request: Request, limit: int) -> Request:
    """The request with a body that answers 413 as soon as it passes ``limit`` bytes: at once
    for a larger ``Content-Length``, else while it streams (chunked bodies have no length), so
    whatever reads it (``body()``, ``stream()``, ``form()``) never holds more than the limit."""
    if declared_length(request) > limit:
        raise _too_large(limit)
    seen = 0

    async def receive() -> Message:
        nonlocal seen
        message = await request.receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise _too_large(limit)
        return message

    return Request(request.scope, receive)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"Request body is larger than the limit of {limit} bytes")


class IndexedHeaders(Headers):
    """Starlette's request headers, each name looked up in a dict made at the first lookup
    instead of a scan of the list (and a ``KeyError`` for every header a request lacks). A
    repeated header gives its first value, as ``Headers`` does."""

    _index: dict[str, str] | None = None

    def _indexed(self) -> dict[str, str]:
        if self._index is None:
            index: dict[str, str] = {}
            for key, value in self.raw:
                index.setdefault(key.decode("latin-1"), value.decode("latin-1"))
            self._index = index
        return self._index

    def __getitem__(self, key: str) -> str:
        try:
            return self._indexed()[key.lower()]
        except KeyError:
            raise KeyError(key) from None

    def __contains__(self, key: Any) -> bool:
        return isinstance(key, str) and key.lower() in self._indexed()

    def get(self, key: str, default: Any = None) -> Any:
        """The header's (first) value, or ``default``."""
        return self._indexed().get(key.lower(), default)


class IndexedRequest(Request):
    """A ``Request`` whose headers are ``IndexedHeaders`` (for a path that reads several)."""

    @property
    def headers(self) -> Headers:
        """The request's headers (made once)."""
        if not hasattr(self, "_headers"):
            self._headers = IndexedHeaders(scope=self.scope)
        return self._headers


def client_address(request: Request) -> str | None:
    """The caller's address: the peer's, or the one a trusted proxy forwarded (the app's
    ``ProxyHeadersMiddleware`` put it in place before any route, log or limit looks at it)."""
    return scope_client(request.scope)


def scope_client(scope: Scope) -> str | None:
    """``client_address`` of a request's ASGI scope."""
    client = scope.get("client")
    return str(client[0]) if client else None


async def read_body(request: Request, limit: int) -> bytes:
    """The whole request body, or a 413 as soon as it passes ``limit`` bytes (what
    ``capped(request, limit).body()`` reads, without a second ``Request`` and its stream)."""
    if declared_length(request) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    seen = 0
    while True:
        message = await request.receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise _too_large(limit)
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        if message["type"] == "http.request":
            if body := message.get("body", b""):
                chunks.append(body)
            if not message.get("more_body", False):
                return b"".join(chunks)


async def decode_json(request: Request, kind: type[T], limit: int) -> T:
    """The request body decoded into ``kind``; a 400 that names the problem otherwise."""
    body = await read_body(request, limit)
    if not body.strip():
        raise ApiError(400, "Request body must be a JSON object")
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise ApiError(400, f"Invalid request body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"Request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "Request body is nested too deeply") from None


async def handle_api_error(request: Request, exc: Exception) -> Response:
    """``ApiError`` → its JSON answer."""
    assert isinstance(exc, ApiError)
    return exc.response()


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 as JSON too."""
    assert isinstance(exc, HTTPException)
    if exc.status_code in {204, 304}:
        return Response(status_code=exc.status_code, headers=exc.headers)
    return error_response(exc.status_code, exc.detail, headers=exc.headers)


_STATUS_BY_ERROR: list[tuple[type[WaitgateError], int]] = [
    (InvalidInput, 400),
    (NotFound, 404),
    (Conflict, 409),
]


async def handle_waitgate_error(request: Request, exc: Exception) -> Response:
    """Domain errors → 400/404/409/503; anything else is a 500 that is logged.

    A 503 says only "database unavailable": driver messages (hosts, users, files) are logged.
    """
    if isinstance(exc, StoreUnavailable):
        log.warning("%s", exc, extra={"action": "store.unavailable"})
        return error_response(
            503, "database unavailable, try again later", headers={"Retry-After": "1"}
        )
    for kind, status in _STATUS_BY_ERROR:
        if isinstance(exc, kind):
            return error_response(status, str(exc))
    log.error("unexpected store error", exc_info=exc, extra={"action": "error.internal"})
    return internal_error()


def internal_error() -> JSONResponse:
    """The answer to a failure nobody expected (its details stay in the log)."""
    return error_response(500, "Internal error")


async def handle_client_gone(request: Request, exc: Exception) -> Response:
    """The body stopped coming: the client hung up, or missed the body deadline and the server
    answered 408 and closed the connection. Nothing went wrong here and nothing more can be
    sent; the 408 is what the access log records."""
    return error_response(408, "Request body not received")


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """Last resort: a JSON 500, logged with its traceback."""
    log.error("unhandled error", exc_info=exc, extra={"action": "error.internal"})
    return internal_error()


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: handle_api_error,
    HTTPException: handle_http_exception,
    WaitgateError: handle_waitgate_error,
    ClientDisconnect: handle_client_gone,
    Exception: handle_unexpected,
}


ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


def exception_handler(exc: Exception) -> ExceptionHandler:
    """The handler of ``EXCEPTION_HANDLERS`` that Starlette would pick for ``exc`` (the most
    specific class), for an endpoint that answers its own errors."""
    for kind in type(exc).__mro__:
        handler: ExceptionHandler | None = EXCEPTION_HANDLERS.get(kind)
        if handler is not None:
            return handler
    return handle_unexpected
