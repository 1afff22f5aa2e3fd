"""Held resume callers (``responseMode`` lastNode / responseNode).

A caller whose wait holds it waits here until the engine finishes the execution, responds
explicitly, or parks it at a new wait (the answers are built in ``gateway.answers``). The
answer is written to the store first, so it reaches the caller whichever process holds the
request: the holder is woken at once when the answer is produced in its own process, and
otherwise finds it at its next look at the store.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from gateway.clock import Clock
from gateway.domain import StoredAnswer
from persistence.base import Store

POLL_MS = 100


class HeldCallers:
    """Callers waiting for the answer to the wait they resumed."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._events: defaultdict[tuple[int, int], asyncio.Event] = defaultdict(asyncio.Event)

    def answered(self, execution_id: int, seq: int) -> None:
        """An answer for this wait was just stored in this process: wake its holder."""
        event = self._events.get((execution_id, seq))
        if event is not None:
            event.set()

    async def wait(self, execution_id: int, seq: int, timeout_ms: int) -> StoredAnswer | None:
        """The answer for the caller held at this wait, or ``None`` after ``timeout_ms``."""
        key = (execution_id, seq)
        event = self._events[key]
        deadline = self._clock.now_ms() + timeout_ms
        try:
            while True:
                answer = await self._store.get_held_answer(execution_id, seq)
                if answer is not None:
                    return answer
                left = deadline - self._clock.now_ms()
                if left <= 0:
                    return None
                event.clear()
                await self._clock.wait(event, min(left, POLL_MS))
        finally:
            self._events.pop(key, None)
