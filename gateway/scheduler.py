"""The timer: sleeps until the next ``waitTill``, then resumes what is due, in batches."""

from __future__ import annotations

import logging

from gateway import metrics, tracing
from gateway.clock import Clock
from gateway.supervisor import Loop
from persistence.base import Store

log = logging.getLogger("waitgate.scheduler")


class Scheduler(Loop):
    """Resumes waits whose deadline has passed (resumedBy ``timeout``), and fires the
    reminders and escalations of approval waits (``persistence.reminders``).

    There is no fixed polling window: the loop sleeps until the earliest deadline in the
    store, or ``max_sleep_ms`` as a safety net, and ``notify`` wakes it at once when a nearer
    deadline is parked. On start it first resumes everything that fell due while it was down.
    """

    name = "scheduler"

    def __init__(self, store: Store, clock: Clock, *, batch_size: int, max_sleep_ms: int) -> None:
        super().__init__()
        self._store = store
        self._clock = clock
        self._batch_size = batch_size
        self._max_sleep_ms = max_sleep_ms
        self._next_deadline: int | None = None

    def notify(self, deadline: int | None) -> None:
        """A wait with this deadline was parked: wake up if it is nearer than the next one."""
        if deadline is None:
            return
        if self._next_deadline is None or deadline < self._next_deadline:
            self._next_deadline = deadline
            self.wake.set()

    async def run_due(self) -> int:
        """Resume every wait due now, batch after batch, then fire the due timers; how many
        waits were resumed."""
        total = 0
        while True:
            started = tracing.started()
            claimed = await self._store.claim_due(self._clock.now_ms(), self._batch_size)
            await tracing.timers_fired(self._store, claimed, started)
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
            if len(claimed) < self._batch_size or self.stopping:
                break
        while not self.stopping:
            fired = await self._store.claim_timers(self._clock.now_ms(), self._batch_size)
            for timer in fired:
                metrics.TIMER_LATENESS.observe(timer.late_ms / 1000)
                log.info(
                    f"approval {timer.kind}",
                    extra={
                        "action": f"approval.{timer.kind}",
                        "execution_id": timer.execution_id,
                        "seq": timer.seq,
                        "n": timer.n,
                        "approvers": list(timer.approvers),
                        "late_ms": timer.late_ms,
                    },
                )
            if len(fired) < self._batch_size:
                break
        return total

    async def step(self) -> int:
        """Resume what is due, then sleep until the next deadline (or the safety net)."""
        await self.run_due()
        self._next_deadline = await self._store.next_deadline()
        return self._sleep_ms()

    def _sleep_ms(self) -> int:
        if self._next_deadline is None:
            return self._max_sleep_ms
        return max(0, min(self._next_deadline - self._clock.now_ms(), self._max_sleep_ms))
