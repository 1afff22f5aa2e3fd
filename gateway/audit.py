"""The audit trail of resume attempts: every call of a resume URL, accepted or refused.

Attempts are buffered and written in batches in the background, off the resume's own
transaction; a crash can lose the last fraction of a second of audit rows, never a resume.
A flush writes at most ``MAX_WRITE`` attempts per write, one write after the other: on SQLite
the writes of resumes arriving meanwhile take their turns between them, where one write of
a fifth of a second's attempts held them all for milliseconds (the p99 of every resume).
The buffer is bounded: while writes fail, the oldest attempts are dropped (and counted in
``waitgate_audit_dropped_total``) rather than letting memory grow.
"""

from __future__ import annotations

import logging

from gateway import metrics
from gateway.clock import Clock
from gateway.domain import ResumeAttempt
from gateway.stored import clip_attempt
from gateway.supervisor import Loop
from persistence.base import Store

log = logging.getLogger("waitgate.audit")
FLUSH_EVERY_MS = 200
MAX_BUFFER = 10_000
MAX_WRITE = 128
"""Attempts per write of a flush (~0.5 ms of the SQLite writer on the CI machine)."""


class AuditTrail(Loop):
    """Collects attempts and writes them in batches (a flush every ``FLUSH_EVERY_MS``)."""

    name = "audit"

    def __init__(self, store: Store, clock: Clock, max_buffer: int | None = None) -> None:
        super().__init__()
        self._store = store
        self._clock = clock
        self._max_buffer = MAX_BUFFER if max_buffer is None else max_buffer
        self._buffer: list[ResumeAttempt] = []
        self.dropped = 0

    @property
    def buffered(self) -> int:
        """How many attempts wait for the next flush."""
        return len(self._buffer)

    def record(self, attempt: ResumeAttempt) -> None:
        """Keep an attempt, its caller-controlled text bounded, for the next flush (the oldest
        are dropped past the bound)."""
        self._buffer.append(clip_attempt(attempt))
        self._trim()

    async def flush(self) -> None:
        """Write what is buffered, ``MAX_WRITE`` attempts per write; on failure keep what was
        not written (within the bound) and re-raise."""
        batch, self._buffer = self._buffer, []
        written = 0
        try:
            while written < len(batch):
                await self._store.record_resume_attempts(batch[written : written + MAX_WRITE])
                written += MAX_WRITE
        except Exception:
            self._buffer[:0] = batch[written:]
            dropped = self._trim()
            if dropped:
                log.warning(
                    "audit buffer full: dropped the %d oldest attempt(s)",
                    dropped,
                    extra={"action": "audit.dropped", "count": dropped},
                )
            raise

    def _trim(self) -> int:
        excess = max(0, len(self._buffer) - self._max_buffer)
        if excess:
            del self._buffer[:excess]
            self.dropped += excess
            metrics.AUDIT_DROPPED.inc(excess)
        return excess

    async def step(self) -> int:
        """Flush, then pause ``FLUSH_EVERY_MS``."""
        await self.flush()
        return FLUSH_EVERY_MS

    async def drain(self) -> None:
        """The last flush at shutdown."""
        await self.flush()
