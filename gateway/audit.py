"""The audit trail of resume attempts: every call of a resume URL, accepted or refused.

Attempts are buffered and written in batches in the background, off the resume's own
transaction; a crash can lose the last fraction of a second of audit rows, never a resume.
"""

from __future__ import annotations

import asyncio
import logging

from gateway.clock import Clock
from gateway.domain import ResumeAttempt
from gateway.errors import StoreError
from gateway.stored import clip_attempt
from persistence.base import Store

log = logging.getLogger("waitgate.audit")
FLUSH_EVERY_MS = 200
MAX_BUFFER = 10_000


class AuditTrail:
    """Collects attempts and writes them in batches."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._buffer: list[ResumeAttempt] = []
        self._stop = asyncio.Event()
        self.dropped = 0

    def record(self, attempt: ResumeAttempt) -> None:
        """Keep an attempt, its caller-controlled text bounded, for the next flush (the oldest
        are dropped past ``MAX_BUFFER``)."""
        if len(self._buffer) >= MAX_BUFFER:
            self._buffer.pop(0)
            self.dropped += 1
        self._buffer.append(clip_attempt(attempt))

    async def flush(self) -> None:
        """Write what is buffered."""
        batch, self._buffer = self._buffer, []
        if not batch:
            return
        try:
            await self._store.record_resume_attempts(batch)
        except StoreError as exc:
            self._buffer[:0] = batch[-(MAX_BUFFER - len(self._buffer)) :]
            log.warning("audit trail not written: %s", exc, extra={"action": "audit.error"})

    async def run(self) -> None:
        """Flush every ``FLUSH_EVERY_MS`` until stopped, then once more."""
        while not self._stop.is_set():
            await self._clock.wait(self._stop, FLUSH_EVERY_MS)
            await self.flush()
        await self.flush()

    def stop(self) -> None:
        """Ask the loop to flush a last time and end."""
        self._stop.set()
