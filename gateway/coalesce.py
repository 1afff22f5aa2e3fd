"""One ``send`` per answer: a response's head held until its body.

uvicorn writes a response's status line and headers, then its body, each with its own
``transport.write`` and so its own ``send`` system call. Every answer the gateway gives is
sent whole at once (a Starlette ``Response`` sends both messages in one event-loop turn), so
the head can wait for the body: ``OneSend`` is the transport a response's cycle writes
through; it holds the first write until the next one (then both go in one call) or until the
end of the event-loop turn, whichever comes first, so a head is never held longer than that.
"""

from __future__ import annotations

import asyncio


class OneSend(asyncio.Transport):
    """The connection's transport as one response's cycle sees it (see the module): ``write``,
    ``close`` and ``is_closing``, all a cycle calls."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = b""
        """The head while it waits; ``b""`` before the first write, ``None`` once sent."""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Hold the first write for the turn; send it with the second."""
        held = self._held
        if held is None:
            self._transport.write(data)
        elif held:
            self._held = None
            self._transport.write(held + data)
        else:
            self._held = bytes(data)
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        held, self._held = self._held, None
        if held and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        """Send what is held, then close the connection."""
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:
        """Whether the connection is closing."""
        return self._transport.is_closing()
