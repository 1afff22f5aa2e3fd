"""The body deadline of ``GuardedHttpProtocol``, driven in process with the time in hand.

Which requests cost a timer (only those whose body did not come with their headers), what a
missed deadline writes (one 408, or nothing if the app answered already), and what the app
still reading sees (``http.disconnect``; its late answer is never written). The same deadline
against a real ``waitgate serve``: ``tests/security/test_server_limits.py``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.server import ServerState

from gateway import serving
from gateway.serving import GuardedHttpProtocol, WireLimits

HEADER_TIMEOUT = 3.0
BODY_TIMEOUT = 7.0


@dataclass
class Timer:
    when: float
    callback: Callable[..., object]
    args: tuple[Any, ...]
    cancelled: bool = False
    fired: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualLoop:
    """The running loop, with its clock and timers in the test's hands."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.now = 1000.0
        self.timers: list[Timer] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> Timer:
        timer = Timer(when, callback, args)
        self.timers.append(timer)
        return timer

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer:
        return self.call_at(self.now + delay, callback, *args)

    def advance(self, seconds: float) -> None:
        """Move the clock on and run the timers that fall due, in order."""
        self.now += seconds
        for timer in sorted(self.timers, key=lambda t: t.when):
            if timer.when <= self.now and not (timer.cancelled or timer.fired):
                timer.fired = True
                timer.callback(*timer.args)


class Transport(asyncio.Transport):
    """A connection that records what is written to it, and anything written after it closed."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop
        self.protocol: GuardedHttpProtocol | None = None
        self.written = bytearray()
        self.written_after_close = bytearray()
        self.closed = False
        self.writes = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1
        (self.written_after_close if self.closed else self.written).extend(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            assert self.protocol is not None
            self._loop.call_soon(self.protocol.connection_lost, None)

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 5678)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


@dataclass
class App:
    """Reads each request's whole body and answers 200 with it, unless ``refuse`` (then 401
    before reading anything). Requests wait for ``go`` before being answered. Whatever
    ``receive`` returned is kept; on ``http.disconnect`` it answers anyway, as an app that
    does not look would."""

    refuse: bool = False
    go: asyncio.Event = field(default_factory=asyncio.Event)
    received: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.go.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.refuse:
            await answer(send, 401, b"no")
            return
        body = b""
        while True:
            message = await receive()
            self.received.append(message["type"])
            if message["type"] == "http.disconnect":
                break
            body += message["body"]
            if not message["more_body"]:
                break
        await self.go.wait()
        await answer(send, 200, body)


async def answer(send: Send, status: int, body: bytes) -> None:
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-length", str(len(body)).encode())],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})


@dataclass
class Connection:
    loop: ManualLoop
    transport: Transport
    protocol: GuardedHttpProtocol
    app: App

    def send(self, data: bytes) -> None:
        self.protocol.data_received(data)

    def body_timers(self) -> list[Timer]:
        """The body deadline's timers armed so far (cancelled ones included)."""
        due = self.protocol._body_too_slow
        return [t for t in self.loop.timers if t.callback == due]

    def armed_body_timers(self) -> list[Timer]:
        return [t for t in self.body_timers() if not (t.cancelled or t.fired)]


@pytest.fixture(autouse=True)
def limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        serving, "wire_limits", lambda: WireLimits(HEADER_TIMEOUT, 8192, BODY_TIMEOUT)
    )


@pytest.fixture
def connect() -> Callable[[App], Connection]:
    """Opens a connection to ``GuardedHttpProtocol`` serving an app."""

    def open_connection(app: App) -> Connection:
        running = asyncio.get_running_loop()
        loop = ManualLoop(running)
        config = Config(
            app=app, lifespan="off", proxy_headers=False, log_config=None, timeout_keep_alive=60
        )  # kept-alive connections outlive the body deadline
        protocol = GuardedHttpProtocol(config, ServerState(), {}, _loop=loop)  # type: ignore[arg-type]
        transport = Transport(running)
        transport.protocol = protocol
        protocol.connection_made(transport)
        return Connection(loop, transport, protocol, app)

    return open_connection


async def settle() -> None:
    """Let the app's tasks and the connection's callbacks run."""
    for _ in range(20):
        await asyncio.sleep(0)


def request(body: bytes, *, declared: int | None = None) -> bytes:
    length = len(body) if declared is None else declared
    return b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % length + body


def answers(written: bytes | bytearray) -> list[bytes]:
    """The status lines written."""
    return re.findall(rb"HTTP/1\.1 \d{3} [^\r]*", bytes(written))


async def test_a_body_that_comes_with_its_headers_costs_no_timer(
    connect: Callable[[App], Connection],
) -> None:
    conn = connect(App())
    conn.send(request(b"hello"))
    await settle()
    conn.send(request(b"again"))  # kept alive: the next request, alike
    await settle()
    assert answers(conn.transport.written) == [b"HTTP/1.1 200 OK"] * 2
    assert conn.body_timers() == []


async def test_a_body_in_pieces_is_timed_once_and_stops_being_timed_when_complete(
    connect: Callable[[App], Connection],
) -> None:
    conn = connect(App())
    started = conn.loop.now
    conn.send(request(b"he", declared=5))
    conn.loop.advance(BODY_TIMEOUT - 1)
    conn.send(b"l")
    conn.send(b"l")
    (timer,) = conn.body_timers()  # one timer for the request, however many pieces
    assert timer.when == started + BODY_TIMEOUT
    conn.send(b"o")
    assert timer.cancelled
    await settle()
    assert answers(conn.transport.written) == [b"HTTP/1.1 200 OK"]
    assert conn.transport.written.endswith(b"hello")


async def test_a_kept_alive_request_gets_its_own_deadline(
    connect: Callable[[App], Connection],
) -> None:
    conn = connect(App())
    conn.send(request(b"he", declared=5))
    conn.loop.advance(BODY_TIMEOUT - 1)
    conn.send(b"llo")
    await settle()
    second = conn.loop.now
    conn.send(request(b"wo", declared=5))
    conn.loop.advance(BODY_TIMEOUT - 1)  # past the first request's deadline
    assert not conn.transport.closed
    (timer,) = conn.armed_body_timers()
    assert timer.when == second + BODY_TIMEOUT
    conn.send(b"rld")
    await settle()
    assert answers(conn.transport.written) == [b"HTTP/1.1 200 OK"] * 2


async def test_a_missed_deadline_answers_408_once_and_the_app_reading_sees_a_disconnect(
    connect: Callable[[App], Connection],
) -> None:
    conn = connect(App())
    conn.send(request(b'{"a": ', declared=100))
    await settle()  # the app waits in receive
    conn.loop.advance(BODY_TIMEOUT)
    await settle()
    written = bytes(conn.transport.written)
    assert answers(written) == [b"HTTP/1.1 408 Request Timeout"]
    assert json.loads(written.partition(b"\r\n\r\n")[2]) == {
        "message": "Request body not received within 7 s",
        "code": 408,
    }
    assert conn.transport.closed
    assert conn.app.received[-1] == "http.disconnect"
    assert conn.transport.written_after_close == b""  # the app's own answer went nowhere


async def test_a_deadline_missed_before_the_app_ran_still_answers_once(
    connect: Callable[[App], Connection],
) -> None:
    conn = connect(App())
    conn.send(request(b"", declared=100))
    conn.loop.advance(BODY_TIMEOUT)  # the app's task has not run yet
    await settle()
    assert answers(conn.transport.written) == [b"HTTP/1.1 408 Request Timeout"]
    assert conn.app.received == ["http.disconnect"]
    assert conn.transport.written_after_close == b""


async def test_a_request_answered_before_its_body_is_closed_at_the_deadline_and_no_more(
    connect: Callable[[App], Connection],
) -> None:
    conn = connect(App(refuse=True))
    conn.send(request(b"{", declared=100))
    await settle()
    assert answers(conn.transport.written) == [b"HTTP/1.1 401 Unauthorized"]
    conn.loop.advance(BODY_TIMEOUT - 0.1)
    assert not conn.transport.closed
    conn.loop.advance(0.1)
    await settle()
    assert conn.transport.closed
    assert answers(conn.transport.written) == [b"HTTP/1.1 401 Unauthorized"]
    assert conn.transport.written_after_close == b""


async def test_a_pipelined_request_starts_its_deadline_when_its_turn_comes(
    connect: Callable[[App], Connection],
) -> None:
    app = App()
    app.go.clear()
    conn = connect(app)
    conn.send(request(b"first") + request(b"se", declared=6))  # the second waits its turn
    await settle()
    assert conn.armed_body_timers() == []
    conn.loop.advance(BODY_TIMEOUT + 1)  # the first takes long: not the second's fault
    assert conn.transport.written == b""
    app.go.set()
    await settle()
    assert answers(conn.transport.written) == [b"HTTP/1.1 200 OK"]
    (timer,) = conn.armed_body_timers()
    assert timer.when == conn.loop.now + BODY_TIMEOUT
    conn.send(b"cond")
    await settle()
    assert answers(conn.transport.written) == [b"HTTP/1.1 200 OK"] * 2
    assert conn.transport.written.endswith(b"second")


async def test_a_lost_connection_stops_the_deadline(
    connect: Callable[[App], Connection],
) -> None:
    conn = connect(App())
    conn.send(request(b"{", declared=100))
    await settle()
    conn.transport.closed = True  # the client hung up
    conn.protocol.connection_lost(None)
    await settle()
    (timer,) = conn.body_timers()
    assert timer.cancelled
    assert conn.app.received[-1] == "http.disconnect"
    assert answers(conn.transport.written) == []


async def test_an_answer_sent_whole_leaves_in_one_write(
    connect: Callable[[App], Connection],
) -> None:
    conn = connect(App())
    for n in (1, 2):  # and again on the kept-alive connection
        before = conn.transport.writes
        conn.send(request(b"hello"))
        await settle()
        assert conn.transport.writes == before + 1
        assert conn.transport.written.count(b"HTTP/1.1 200 OK") == n
        assert conn.transport.written.endswith(b"\r\n\r\nhello")
