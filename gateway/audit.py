"""The audit trail of resume attempts: every call of a resume URL, accepted or refused.

Attempts are buffered and written in batches in the background, off the resume's own
transaction; a crash can lose the last fraction of a second of audit rows, never a resume.
A flush writes at most ``MAX_WRITE`` attempts per write, one write after the other: on SQLite
the writes of resumes arriving meanwhile take their turns between them, where one write of
a fifth of a second's attempts held them all for milliseconds (the p99 of every resume).
The buffer is bounded: while writes fail, the oldest attempts are dropped (and counted in
``waitgate_audit_dropped_total``) rather than letting memory grow.

Each execution keeps ``AUDIT_ROWS_KEPT`` rows of each outcome. Cutting a pair back costs a
statement, which for the usual execution (one call, one row) would cut nothing, so a writer cuts
a pair back after every ``TRIM_EVERY`` rows it wrote of it (``TrimSchedule``), and every pair it
counted at shutdown: a pair holds at most ``TRIM_EVERY - 1`` rows more per writing process.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from gateway import metrics
from gateway.clock import Clock
from gateway.domain import AuditPair, ResumeAttempt
from gateway.stored import clip_attempt
from gateway.supervisor import Loop
from persistence.base import Store

log = logging.getLogger("waitgate.audit")
FLUSH_EVERY_MS = 200
MAX_BUFFER = 10_000
MAX_WRITE = 128
"""Attempts per write of a flush (~0.5 ms of the SQLite writer on the CI machine)."""
TRIM_EVERY = 32
"""Rows of an (execution, outcome) pair a process writes before it cuts the pair back."""
MAX_COUNTED = 1024
"""Pairs whose rows a process counts; the least recently written beyond are cut back at once."""


class TrimSchedule:
    """Which (execution, outcome) pairs of the audit trail a write cuts back: a pair after
    every ``every`` rows written of it, a pair no longer counted (the least recently written
    past ``counted``), and the pairs of a write that failed."""

    def __init__(self, every: int | None = None, counted: int | None = None) -> None:
        self._every = TRIM_EVERY if every is None else every
        self._counted = MAX_COUNTED if counted is None else counted
        self._written: OrderedDict[AuditPair, int] = OrderedDict()
        """Rows written of each pair since it was last cut back, least recently written first."""
        self._due: dict[AuditPair, None] = {}

    def due(self, attempts: list[ResumeAttempt]) -> list[AuditPair]:
        """Count the rows of a write about to be made; the pairs it must cut back."""
        for attempt in attempts:
            pair = (attempt.execution_id, attempt.outcome)
            written = self._written.pop(pair, 0) + 1
            if written >= self._every:
                self._due[pair] = None
            else:
                self._written[pair] = written
        while len(self._written) > self._counted:
            self._due[self._written.popitem(last=False)[0]] = None
        due, self._due = list(self._due), {}
        return due

    def failed(self, pairs: list[AuditPair]) -> None:
        """The write that was to cut ``pairs`` back failed: the next one does."""
        self._due.update(dict.fromkeys(pairs))

    def everything(self) -> list[AuditPair]:
        """Every pair counted or due (at shutdown), forgetting them."""
        pairs = [*self._due, *self._written]
        self._due, self._written = {}, OrderedDict()
        return pairs


class AuditTrail(Loop):
    """Collects attempts and writes them in batches (a flush every ``FLUSH_EVERY_MS``)."""

    name = "audit"

    def __init__(self, store: Store, clock: Clock, max_buffer: int | None = None) -> None:
        super().__init__()
        self._store = store
        self._clock = clock
        self._max_buffer = MAX_BUFFER if max_buffer is None else max_buffer
        self._buffer: list[ResumeAttempt] = []
        self._trims = TrimSchedule()
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
        """Write what is buffered, ``MAX_WRITE`` attempts per write, cutting back the pairs
        due; on failure keep what was not written (within the bound) and re-raise."""
        batch, self._buffer = self._buffer, []
        written = 0
        try:
            while written < len(batch):
                await self._write(batch[written : written + MAX_WRITE])
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

    async def _write(self, attempts: list[ResumeAttempt], *, every_pair: bool = False) -> None:
        trim = self._trims.everything() if every_pair else self._trims.due(attempts)
        if not (attempts or trim):
            return
        try:
            await self._store.record_resume_attempts(attempts, trim)
        except Exception:
            self._trims.failed(trim)
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
        """The last flush at shutdown, then every pair counted cut back."""
        await self.flush()
        await self._write([], every_pair=True)
