"""The gauges of the whole database (executions by status, overdue waits, delivery endpoints by
state), read for ``/metrics`` at most once per ``MAX_AGE_MS``.

Each read counts rows (at 1,000,000 executions on SQLite, ~120 ms of a reader connection),
and ``/metrics`` may be open to anyone who can reach it: however often it is scraped, the
database is counted at most once a second, and scrapes that arrive during a read share it.
Prometheus scrapes every 15 s or so, so the figures it stores are as fresh as before.
"""

from __future__ import annotations

import asyncio

from gateway import metrics
from gateway.clock import Clock
from persistence.base import Store

MAX_AGE_MS = 1_000


class DatabaseGauges:
    """Sets the database's gauges, reading it again only when the last read is older than
    ``MAX_AGE_MS`` (by the gateway's clock)."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._read_at: int | None = None
        self._reading: asyncio.Future[None] | None = None

    async def refresh(self) -> None:
        """Make the gauges at most ``MAX_AGE_MS`` old; a failed read raises (and is tried
        again by the next scrape)."""
        now = self._clock.now_ms()
        if self._read_at is not None and now - self._read_at < MAX_AGE_MS:
            return
        if self._reading is None or self._reading.done():
            self._reading = asyncio.ensure_future(self._read(now))
        await asyncio.shield(self._reading)

    async def _read(self, now: int) -> None:
        counts = await self._store.count_by_status()
        overdue = await self._store.count_overdue(now)
        endpoints = await self._store.count_endpoints_by_state()
        for status in metrics.STATUSES:
            metrics.EXECUTIONS.labels(status).set(counts.get(status, 0))
        metrics.OVERDUE.set(overdue)
        for state in metrics.ENDPOINT_STATES:
            metrics.ENDPOINTS.labels(state).set(endpoints.get(state, 0))
        self._read_at = now
