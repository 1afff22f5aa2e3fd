"""The one clock seam: every "now" in waitgate comes from a ``Clock``.

Times are integer milliseconds since the Unix epoch (UTC) everywhere inside the gateway and
the store; they become RFC 3339 strings only at the HTTP edge.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Protocol


class Clock(Protocol):
    """Tells the time and waits for an event or a deadline, whichever comes first."""

    def now_ms(self) -> int:
        """Milliseconds since the epoch, UTC."""
        ...

    async def wait(self, event: asyncio.Event, timeout_ms: int | None) -> None:
        """Return when ``event`` is set or ``timeout_ms`` have passed on this clock."""
        ...


class SystemClock:
    """The real wall clock."""

    def now_ms(self) -> int:
        """Milliseconds since the epoch, UTC."""
        return time.time_ns() // 1_000_000

    async def wait(self, event: asyncio.Event, timeout_ms: int | None) -> None:
        """Wait for ``event`` or ``timeout_ms`` of real time."""
        timeout = None if timeout_ms is None else max(timeout_ms, 0) / 1000
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)


class ManualClock:
    """A clock that only moves when told to; waiters wake when their deadline is passed."""

    def __init__(self, start_ms: int = 1_767_225_600_000) -> None:
        self._now = start_ms
        self._moved = asyncio.Event()

    def now_ms(self) -> int:
        """The current manual time."""
        return self._now

    def advance(self, ms: int) -> None:
        """Move time forward and wake every waiter so it can check its deadline."""
        self._now += ms
        self._moved.set()
        self._moved = asyncio.Event()

    def set(self, now_ms: int) -> None:
        """Jump to an absolute time."""
        self.advance(now_ms - self._now)

    async def wait(self, event: asyncio.Event, timeout_ms: int | None) -> None:
        """Wait for ``event`` or until the manual time passes the deadline."""
        deadline = None if timeout_ms is None else self._now + max(timeout_ms, 0)
        while not event.is_set() and (deadline is None or self._now < deadline):
            moved = self._moved
            waiters = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(moved.wait())]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()


class AlignedClock:
    """A clock that follows a reference clock (the database server's) by a measured offset.

    ``align`` asks the reference for its time and keeps the difference to the base clock,
    taking the middle of the round trip. Durations still pass on the base clock; only the
    instants shift. With no reference (SQLite), the offset stays zero.
    """

    def __init__(self, base: Clock) -> None:
        self.base = base
        self.offset_ms = 0

    def now_ms(self) -> int:
        """The base clock's time plus the measured offset."""
        return self.base.now_ms() + self.offset_ms

    async def wait(self, event: asyncio.Event, timeout_ms: int | None) -> None:
        """Wait on the base clock."""
        await self.base.wait(event, timeout_ms)

    async def align(self, reference: Callable[[], Awaitable[int | None]]) -> None:
        """Measure the offset to ``reference`` (which returns ms since the epoch, or None)."""
        before = self.base.now_ms()
        theirs = await reference()
        after = self.base.now_ms()
        if theirs is not None:
            self.offset_ms = theirs - (before + after) // 2
