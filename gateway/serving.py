"""How requests are read off the wire: deadlines for headers and bodies, a header size cap.

uvicorn closes idle keep-alive connections and caps concurrency, but has no deadline for a
request's header block or body and no size cap for its header block under httptools
(``h11_max_incomplete_event_size`` applies to h11 only). ``GuardedHttpProtocol`` adds all three;
``waitgate serve`` runs it. Its timers are armed only while a client owes bytes: a request whose
body arrives with its headers (the usual one) costs no timer at all.
"""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import dataclass
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.answers import ANSWER_POLICY
from gateway.coalesce import OneSend
from gateway.config import Settings
from gateway.http import error_body

_REFUSAL_HEADERS = (
    b"content-security-policy: %s\r\nx-content-type-options: nosniff\r\n"
    b"connection: close\r\n\r\n" % ANSWER_POLICY.encode()
)


@dataclass(frozen=True)
class WireLimits:
    """How long a request's header block and body may take to arrive; how large its header
    block may be."""

    header_timeout_seconds: float
    max_header_bytes: int
    body_timeout_seconds: float


@functools.cache
def wire_limits() -> WireLimits:
    """The limits of this process (read once from the environment, in every worker)."""
    settings = Settings.from_env()
    return WireLimits(
        settings.header_timeout_seconds, settings.max_header_bytes, settings.body_timeout_seconds
    )


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with deadlines for each header block and body and a size
    cap for each header block.

    The header deadline starts when a connection opens (or a request's first byte arrives on a
    kept-alive one) and ends when the headers are complete; a connection that has not sent
    them by then gets 408 and is closed, however it trickles bytes (one that sent nothing is
    just closed). A header block (request line included) over the cap gets 431 and the
    connection is closed.

    A request's whole body must arrive within the body timeout of its headers (a pipelined
    request's, of its turn to be served). That costs a timer only when the body did not come
    with the headers. If it is missed, a request not
    answered yet gets 408 and one answered already (say, refused before its body was read)
    none; either way the connection is closed and the app, if still reading, gets
    ``http.disconnect``, and anything it sends later is dropped.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._limits = wire_limits()
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._reading_headers = True
        self._refused = False
        self._body_owed = False  # a request's headers are in, its body not all yet
        self._body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the header deadline at once: an idle new connection must send headers too."""
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop both deadlines."""
        self._disarm()
        self._disarm_body()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser; refuse a header block that has grown past the cap; start the body
        deadline if a request's headers are in but its body is not."""
        if self._refused:
            return
        if self._reading_headers:
            if self._header_timer is None:
                self._arm()
            self._header_bytes += len(data)
        super().data_received(data)
        if self._reading_headers and self._header_bytes > self._limits.max_header_bytes:
            self._refuse(431, "Request header fields too large")
        elif self._body_owed and self._body_timer is None and not self.pipeline:
            self._arm_body()  # in the call that completed the headers: their time, to the µs

    def on_headers_complete(self) -> None:
        """The headers are in: stop the deadline, check the size, start the request."""
        self._reading_headers = False
        self._disarm()
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self._limits.max_header_bytes:
            self._refuse(431, "Request header fields too large")
            raise ValueError("header block too large")  # stops the parser; answered already
        cycle = self.cycle
        super().on_headers_complete()
        self._body_owed = self.cycle is not cycle  # a request to serve (not an upgrade)
        if self._body_owed:
            self.cycle.transport = OneSend(self.transport, self.loop)

    def on_message_complete(self) -> None:
        """The request is in; the next bytes on this connection are a new header block."""
        self._body_owed = False
        if self._body_timer is not None:
            self._disarm_body()
        super().on_message_complete()
        self._reading_headers = True
        self._header_bytes = 0

    def on_response_complete(self) -> None:
        """A pipelined request whose body is still owed starts its deadline with its turn."""
        super().on_response_complete()
        if (
            self._body_owed
            and self._body_timer is None
            and not self.pipeline
            and not self.transport.is_closing()
        ):
            self._arm_body()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's 400 for unparsable input, unless this connection was refused already."""
        if not self._refused:
            super().send_400_response(msg)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(
            self._limits.header_timeout_seconds, self._headers_too_slow
        )

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _arm_body(self) -> None:
        self._body_timer = self.loop.call_later(
            self._limits.body_timeout_seconds, self._body_too_slow
        )

    def _disarm_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self._reading_headers or self.transport.is_closing():
            return
        if self._header_bytes:
            self._refuse(408, "Request headers not received in time")
        else:
            self.transport.close()  # nothing was asked: nothing to answer

    def _body_too_slow(self) -> None:
        self._body_timer = None
        if not self._body_owed or self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle.response_started:
            self.transport.close()  # answered already (or answering): nothing more to say
        else:
            timeout = self._limits.body_timeout_seconds
            self._refuse(408, f"Request body not received within {timeout:g} s")
        # What ``connection_lost`` will do, now: the app's ``receive`` answers
        # ``http.disconnect`` and its ``send`` writes nothing, so its answer cannot follow ours.
        if not cycle.response_complete:
            cycle.disconnected = True
        cycle.message_event.set()

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` in the one error shape and close the connection. The answer
        carries the headers every answer under ``/webhook-waiting`` carries (whatever the
        path: it may not be known yet, and they are harmless on the gateway's own JSON)."""
        self._refused = True
        self._disarm()
        self._disarm_body()
        body = json.dumps(error_body(status, message)).encode()
        head = b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body)
        if not self.transport.is_closing():
            self.transport.write(STATUS_LINE[status] + head + _REFUSAL_HEADERS + body)
            self.transport.close()
