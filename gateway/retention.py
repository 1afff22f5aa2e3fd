"""Retention: finished executions are deleted after a maximum age or past a maximum count.

n8n's defaults: 336 hours, the newest 10,000 finished executions. Waiting, new and running
executions are never deleted. Deletion goes in small batches, each its own short transaction,
so a resume waits behind one batch at most (~1.5 ms on the CI machine), never a whole run.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from gateway.clock import Clock
from gateway.config import Settings
from gateway.supervisor import Loop
from persistence.base import Store

log = logging.getLogger("waitgate.retention")


@dataclass(frozen=True)
class RetentionPolicy:
    """How long and how many finished executions are kept."""

    max_age_ms: int = 336 * 3600 * 1000
    max_count: int = 10_000
    batch: int = 128
    """Executions per write (~1.5 ms of the SQLite writer on the CI machine; 500 took 4 to 6 ms,
    which every resume arriving meanwhile waited for)."""
    interval_ms: int = 300_000

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        """The retention the settings ask for."""
        return cls(
            max_age_ms=int(settings.retention_max_age_hours * 3600 * 1000),
            max_count=settings.retention_max_count,
            interval_ms=int(settings.retention_interval_seconds * 1000),
        )


async def prune(store: Store, clock: Clock, policy: RetentionPolicy) -> int:
    """Delete everything the policy no longer keeps, batch after batch; how many. Which ids
    are past the newest ``max_count`` is read once, on a reader, not in each batch's write."""
    total = 0
    floor = await store.prune_floor(policy.max_count)
    while True:
        cutoff = clock.now_ms() - policy.max_age_ms
        deleted = await store.prune(cutoff, floor, policy.batch)
        total += deleted
        if deleted < policy.batch:
            return total
        await asyncio.sleep(0)  # let requests in between batches


async def prune_events(store: Store, clock: Clock, policy: RetentionPolicy) -> int:
    """Delete the events past their source's windows, batch after batch, and forget the paths
    of each source no open wait matches on any more; how many events."""
    total = 0
    while True:
        deleted = await store.prune_events(clock.now_ms(), policy.batch)
        total += deleted
        if deleted < policy.batch:
            break
        await asyncio.sleep(0)
    after: str | None = None
    while True:
        sources = await store.list_event_sources(None, after, policy.batch)
        for source in sources:
            await store.prune_source_paths(source.name)
        if len(sources) < policy.batch:
            return total
        after = sources[-1].name


class Pruner(Loop):
    """Runs ``prune`` every ``interval_ms`` in the background."""

    name = "pruner"

    def __init__(self, store: Store, clock: Clock, policy: RetentionPolicy) -> None:
        super().__init__()
        self._store = store
        self._clock = clock
        self._policy = policy

    async def step(self) -> int:
        """Prune once, then pause ``interval_ms``."""
        deleted = await prune(self._store, self._clock, self._policy)
        if deleted:
            log.info(
                "pruned finished executions",
                extra={"action": "retention.pruned", "count": deleted},
            )
        events = await prune_events(self._store, self._clock, self._policy)
        if events:
            log.info("pruned events", extra={"action": "retention.events_pruned", "count": events})
        return self._policy.interval_ms


def retention_in_words(settings: Settings) -> str:
    """How long finished executions are kept, as the dashboard says it."""
    hours = settings.retention_max_age_hours
    age = f"{hours / 24:g} days" if hours % 24 == 0 else f"{hours:g} hours"
    return (
        f"Finished executions, with their decisions, are kept {age} and at most the newest "
        f"{settings.retention_max_count:,}; to keep them longer, raise "
        "WAITGATE_RETENTION_MAX_AGE (hours) and WAITGATE_RETENTION_MAX_COUNT."
    )
