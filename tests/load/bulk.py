"""Fill a waitgate SQLite database with parked executions quickly, for benchmarks.

The schema comes from the real migrations; rows are inserted with plain SQL in large
transactions, because parking a million executions over HTTP would take longer than the
benchmark it prepares.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

from persistence.sqlite import SqliteStore

BATCH = 50_000
HOOK = json.dumps(
    {
        "methods": ["POST"],
        "suffix": "",
        "responseCode": 200,
        "responseData": None,
        "responseHeaders": {},
        "responseMode": "onReceived",
    }
)


async def _migrate(path: Path) -> None:
    store = SqliteStore(path)
    await store.open()
    try:
        await store.migrate()
    finally:
        await store.close()


def fill(
    path: Path,
    count: int,
    wait_till: Callable[[int], int | None],
    custom_data: Callable[[int], dict[str, str]] = lambda n: {},
    now: int = 1_767_225_600_000,
) -> None:
    """Park ``count`` executions; execution ``n`` (from 0) waits until ``wait_till(n)``."""
    asyncio.run(_migrate(path))
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    try:
        first = (conn.execute("SELECT coalesce(max(id), 0) FROM executions").fetchone()[0]) + 1
        for start in range(0, count, BATCH):
            numbers = range(start, min(start + BATCH, count))
            conn.executemany(
                "INSERT INTO executions (id, workflow_id, mode, status, started_at, wait_till, "
                "wait_seq, wait_suffix, custom_data) "
                "VALUES (?, 'bench', 'integrated', 'waiting', ?, ?, 1, '', ?)",
                [
                    (first + n, now, wait_till(n) or 32_503_680_000_000, json.dumps(custom_data(n)))
                    for n in numbers
                ],
            )
            conn.executemany(
                "INSERT INTO waits (execution_id, seq, parked_at, wait_till, webhook) "
                "VALUES (?, 1, ?, ?, ?)",
                [(first + n, now, wait_till(n), HOOK) for n in numbers],
            )
            conn.commit()
    finally:
        conn.close()
