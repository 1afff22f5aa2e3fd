"""How requests are read off the wire: deadlines for headers and bodies, a header size cap.

uvicorn closes idle keep-alive connections and caps concurrency, but has no deadline for a
request's header block and no size cap for it under httptools (``h11_max_incomplete_event_size``
applies to h11 only). ``GuardedHttpProtocol`` adds both; ``waitgate serve`` runs it. A slow
body is bounded by the ``BodyDeadline`` middleware: the whole body must arrive within
``WAITGATE_BODY_TIMEOUT`` of the request's start, or the answer is 408.
"""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.config import Settings
from gateway.http import error_body, error_response


@dataclass(frozen=True)
class HeaderLimits:
    """How long a request's header block may take to arrive, and how large it may be."""

    timeout_seconds: float
    max_bytes: int


@functools.cache
def header_limits() -> HeaderLimits:
    """The limits of this process (read once from the environment, in every worker)."""
    settings = Settings.from_env()
    return HeaderLimits(settings.header_timeout_seconds, settings.max_header_bytes)


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline and a size cap for each header block.

    The deadline starts when a connection opens (or a request's first byte arrives on a
    kept-alive one) and ends when the headers are complete; a connection that has not sent
    them by then gets 408 and is closed, however it trickles bytes (one that sent nothing is
    just closed). A header block (request
    line included) over the cap gets 431 and the connection is closed.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._limits = header_limits()
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._reading_headers = True
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the header deadline at once: an idle new connection must send headers too."""
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the header deadline."""
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser; refuse a header block that has grown past the cap."""
        if self._refused:
            return
        if self._reading_headers:
            if self._header_timer is None:
                self._arm()
            self._header_bytes += len(data)
        super().data_received(data)
        if self._reading_headers and self._header_bytes > self._limits.max_bytes:
            self._refuse(431, "Request header fields too large")

    def on_headers_complete(self) -> None:
        """The headers are in: stop the deadline, check the size, start the request."""
        self._reading_headers = False
        self._disarm()
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self._limits.max_bytes:
            self._refuse(431, "Request header fields too large")
            raise ValueError("header block too large")  # stops the parser; answered already
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The request is in; the next bytes on this connection are a new header block."""
        super().on_message_complete()
        self._reading_headers = True
        self._header_bytes = 0

    def send_400_response(self, msg: str) -> None:
        """uvicorn's 400 for unparsable input, unless this connection was refused already."""
        if not self._refused:
            super().send_400_response(msg)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(
            self._limits.timeout_seconds, self._headers_too_slow
        )

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self._reading_headers or self.transport.is_closing():
            return
        if self._header_bytes:
            self._refuse(408, "Request headers not received in time")
        else:
            self.transport.close()  # nothing was asked: nothing to answer

    def _refuse(self, status: int, message: str) -> None:
        self._refused = True
        self._disarm()
        body = json.dumps(error_body(status, message)).encode()
        head = (
            b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % len(body)
        )
        if not self.transport.is_closing():
            self.transport.write(STATUS_LINE[status] + head + body)
            self.transport.close()


class BodyTooSlow(Exception):
    """The request body did not arrive within the deadline."""


class BodyDeadline:
    """ASGI middleware: the whole request body must arrive within ``timeout_seconds`` of the
    request's start; otherwise 408 (connection closed). Waiting for a disconnect after the
    body is complete is not bounded."""

    def __init__(self, app: ASGIApp, timeout_seconds: float) -> None:
        self.app = app
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request with a bounded ``receive``."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.timeout_seconds
        body_done = False
        started = False

        async def bounded_receive() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTooSlow from None
            body_done = message["type"] != "http.request" or not message.get("more_body")
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracked_send)
        except BodyTooSlow:
            if started:
                raise
            answer = error_response(
                408,
                f"Request body not received within {self.timeout_seconds:g} s",
                headers={"connection": "close"},
            )
            await answer(scope, receive, send)
