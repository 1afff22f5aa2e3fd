"""A response's head waits for its body within one event-loop turn, never longer."""

from __future__ import annotations

import asyncio

from gateway.coalesce import OneSend


class Recording(asyncio.Transport):
    """A transport that records each write (one per ``send`` system call)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


async def test_a_whole_answer_leaves_in_one_write() -> None:
    transport = Recording()
    wire = OneSend(transport, asyncio.get_running_loop())
    wire.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert transport.writes == []
    wire.write(b"body")
    wire.write(b"more")
    assert transport.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"more"]
    await asyncio.sleep(0)
    assert transport.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"more"]


async def test_a_head_whose_body_comes_later_is_sent_at_the_end_of_the_turn() -> None:
    transport = Recording()
    wire = OneSend(transport, asyncio.get_running_loop())
    wire.write(b"head")
    await asyncio.sleep(0)
    assert transport.writes == [b"head"]
    wire.write(b"body")
    assert transport.writes == [b"head", b"body"]


async def test_close_sends_what_is_held_first() -> None:
    transport = Recording()
    wire = OneSend(transport, asyncio.get_running_loop())
    wire.write(b"head")
    wire.close()
    assert transport.writes == [b"head"]
    assert wire.is_closing()
    await asyncio.sleep(0)  # the turn's flush finds nothing more to send
    assert transport.writes == [b"head"]


async def test_nothing_is_written_to_a_connection_closed_meanwhile() -> None:
    transport = Recording()
    wire = OneSend(transport, asyncio.get_running_loop())
    wire.write(b"head")
    transport.close()
    await asyncio.sleep(0)
    assert transport.writes == []
