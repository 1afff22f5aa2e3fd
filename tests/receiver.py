"""A real HTTP server on loopback that plays the engine's callback endpoint in tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp


@dataclass
class Received:
    """One request the receiver got."""

    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Records every POST; answers with the queued status codes, then ``default_status``.

    With ``answer_bytes`` set, the answer's body is that many bytes, streamed in 64 KiB chunks;
    ``answer_headers`` go with every answer (``webhook-delivery: abort-message``, say).
    """

    url: str = ""
    received: list[Received] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    default_status: int = 200
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    answering: asyncio.Event = field(default_factory=asyncio.Event)
    answer_bytes: int = 0
    answer_headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.answering.set()

    async def handle(self, request: Request) -> Response:
        """Record the request and answer (once ``answering`` is set: clear it to hang)."""
        self.received.append(Received(dict(request.headers), await request.body()))
        self.arrived.set()
        await self.answering.wait()
        status = self.answers.pop(0) if self.answers else self.default_status
        if self.answer_bytes:
            return StreamingResponse(
                self._stream(), status_code=status, headers=self.answer_headers
            )
        body = b"{}" if status < 300 else b"nope"
        return Response(body, status_code=status, headers=self.answer_headers)

    async def _stream(self) -> AsyncIterator[bytes]:
        chunk = b"x" * 65536
        for _ in range(0, self.answer_bytes, len(chunk)):
            yield chunk

    async def wait_for(self, count: int, within: float = 5.0) -> None:
        """Until at least ``count`` requests have arrived (bounded)."""
        async with asyncio.timeout(within):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serving(
    app: ASGIApp, port: int | None = None, *, lifespan: Literal["on", "off"] = "off"
) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on loopback (``port``, or a free one) in this event loop for
    the duration; yields its origin (``http://127.0.0.1:<port>``)."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan)
    )
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(20):
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("the server did not start")
            await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def running_receiver(port: int | None = None) -> AsyncIterator[Receiver]:
    """Serve a ``Receiver`` on loopback (``port``, or a free one) for the duration."""
    receiver = Receiver()
    app = Starlette(routes=[Route("/callbacks", receiver.handle, methods=["POST"])])
    async with serving(app, port) as origin:
        receiver.url = f"{origin}/callbacks"
        yield receiver
