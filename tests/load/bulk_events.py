"""Fill a waitgate SQLite database with executions parked on events, quickly, for benchmarks.

The schema comes from the real migrations and the event source is created by the store; the
waits are then inserted with plain SQL in large transactions, row for row what a park with
``events`` writes (the execution, its wait with its resolved conditions, one ``wait_events``
row per condition with its match key, one ``wait_match_keys`` row per key, the source's paths
and shapes), because parking a million executions over HTTP would take longer than the
benchmark it prepares.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

from gateway.domain import FOREVER_MS
from gateway.event_model import EventCondition, EventSource
from persistence import event_rows
from persistence.sqlite import SqliteStore

BATCH = 50_000
NOW = 1_767_225_600_000


async def _migrate_with_source(path: Path, source: EventSource, now: int) -> None:
    store = SqliteStore(path)
    await store.open()
    try:
        await store.migrate()
        if await store.get_event_source(source.name) is None:
            await store.create_event_source(source, now)
    finally:
        await store.close()


def fill_event_waits(
    path: Path,
    count: int,
    source: EventSource,
    conditions: Callable[[int], tuple[EventCondition, ...]],
    custom_data: Callable[[int], dict[str, str]] = lambda n: {},
    now: int = NOW,
) -> range:
    """Park ``count`` executions on events of ``source``: execution ``n`` (from 0) waits for
    ``conditions(n)`` (resolved: plain values), with no deadline and no webhook. The ids of
    the executions it made."""
    asyncio.run(_migrate_with_source(path, source, now))
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    paths: set[str] = set()
    shapes: set[str] = set()
    try:
        first = (conn.execute("SELECT coalesce(max(id), 0) FROM executions").fetchone()[0]) + 1
        for start in range(0, count, BATCH):
            numbers = range(start, min(start + BATCH, count))
            executions, waits, conds, keys = [], [], [], []
            for n in numbers:
                eid = first + n
                wanted = conditions(n)
                executions.append((eid, now, FOREVER_MS, json.dumps(custom_data(n))))
                waits.append((eid, now, event_rows.dump_conditions(wanted)))
                for cond, condition in enumerate(wanted):
                    values = condition.values
                    key = event_rows.match_key(values)
                    conds.append((eid, cond, condition.source, condition.name, len(values), key))
                    if values:
                        shapes.add(event_rows.shape(values))
                    for key_path, value in values.items():
                        keys.append((eid, cond, condition.source, key_path, value))
                        paths.add(key_path)
            conn.executemany(
                "INSERT INTO executions (id, workflow_id, mode, status, started_at, wait_till, "
                "wait_seq, wait_suffix, custom_data) "
                "VALUES (?, 'bench-events', 'integrated', 'waiting', ?, ?, 1, NULL, ?)",
                executions,
            )
            conn.executemany(
                "INSERT INTO waits (execution_id, seq, parked_at, wait_till, webhook, events) "
                "VALUES (?, 1, ?, NULL, NULL, ?)",
                waits,
            )
            conn.executemany(
                "INSERT INTO wait_events (execution_id, seq, cond, source, name, n_keys, "
                "match_key) VALUES (?, 1, ?, ?, ?, ?, ?)",
                conds,
            )
            conn.executemany(
                "INSERT INTO wait_match_keys (execution_id, seq, cond, source, path, value) "
                "VALUES (?, 1, ?, ?, ?, ?)",
                keys,
            )
            conn.commit()
        conn.executemany(
            "INSERT INTO event_source_paths (source, path) VALUES (?, ?) ON CONFLICT DO NOTHING",
            [(source.name, p) for p in sorted(paths)],
        )
        conn.executemany(
            "INSERT INTO event_source_shapes (source, shape) VALUES (?, ?) ON CONFLICT DO NOTHING",
            [(source.name, s) for s in sorted(shapes)],
        )
        conn.commit()
    finally:
        conn.close()
    return range(first, first + count)
