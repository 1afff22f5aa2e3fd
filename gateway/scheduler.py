"""The timer: sleeps until the next ``waitTill``, then resumes what is due, in batches."""

from __future__ import annotations

import asyncio
import logging

from gateway import metrics
from gateway.clock import Clock
from gateway.errors import StoreError
from persistence.base import Store

log = logging.getLogger("waitgate.scheduler")
RETRY_AFTER_ERROR_MS = 1000


class Scheduler:
    """Resumes waits whose deadline has passed (resumedBy ``timeout``).

    There is no fixed polling window: the loop sleeps until the earliest deadline in the
    store, or ``max_sleep_ms`` as a safety net, and ``notify`` wakes it at once when a nearer
    deadline is parked. On start it first resumes everything that fell due while it was down.
    """

    def __init__(self, store: Store, clock: Clock, *, batch_size: int, max_sleep_ms: int) -> None:
        self._store = store
        self._clock = clock
        self._batch_size = batch_size
        self._max_sleep_ms = max_sleep_ms
        self._wake = asyncio.Event()
        self._next_deadline: int | None = None
        self._stopping = False
        self.resumed_total = 0

    def notify(self, deadline: int | None) -> None:
        """A wait with this deadline was parked: wake up if it is nearer than the next one."""
        if deadline is None:
            return
        if self._next_deadline is None or deadline < self._next_deadline:
            self._next_deadline = deadline
            self._wake.set()

    async def run_due(self) -> int:
        """Resume every wait due now, batch after batch; how many were resumed."""
        total = 0
        while True:
            claimed = await self._store.claim_due(self._clock.now_ms(), self._batch_size)
            total += len(claimed)
            for execution_id, seq, late_ms in claimed:
                metrics.TIMER_LATENESS.observe(late_ms / 1000)
                metrics.RESUMES.labels("timeout").inc()
                log.info(
                    "wait timed out",
                    extra={
                        "action": "wait.timeout",
                        "execution_id": execution_id,
                        "seq": seq,
                        "late_ms": late_ms,
                    },
                )
            if len(claimed) < self._batch_size:
                break
        self.resumed_total += total
        return total

    async def run(self) -> None:
        """The loop; returns after ``stop``."""
        while not self._stopping:
            self._wake.clear()
            try:
                await self.run_due()
                self._next_deadline = await self._store.next_deadline()
            except StoreError as exc:
                log.warning(
                    "scheduler could not reach the store: %s",
                    exc,
                    extra={"action": "scheduler.error"},
                )
                await self._clock.wait(self._wake, RETRY_AFTER_ERROR_MS)
                continue
            await self._clock.wait(self._wake, self._sleep_ms())

    def _sleep_ms(self) -> int:
        if self._next_deadline is None:
            return self._max_sleep_ms
        return max(0, min(self._next_deadline - self._clock.now_ms(), self._max_sleep_ms))

    def stop(self) -> None:
        """Ask the loop to end after its current step."""
        self._stopping = True
        self._wake.set()
