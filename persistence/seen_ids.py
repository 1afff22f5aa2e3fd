"""The relay's remembered webhook-ids in a SQLite file (``gateway.integrations.seen_ids``
says what a claim is). Standard ``sqlite3`` on a worker thread: a relay has no store of its own
and its writes are few."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from importlib import resources
from pathlib import Path
from typing import Literal

from persistence.sqlfiles import named_queries

Claim = Literal["new", "done", "busy"]
"""``new``: handle it now; ``done``: a duplicate of a handled callback; ``busy``: being handled."""

LEASE_SECONDS = 300.0
KEEP_SECONDS = 7 * 24 * 3600.0
PRUNE_EVERY = 1000

_QUERIES = named_queries(
    resources.files("persistence").joinpath("sql", "relay", "seen_ids.sql").read_text(),
    "seen_ids.sql",
)


class SqliteSeenIds:
    """Ids kept in a SQLite file, so duplicates stay out across restarts (and across relays
    on one machine sharing the file: each claim is one conditional write)."""

    def __init__(
        self,
        path: str | Path,
        *,
        lease_seconds: float = LEASE_SECONDS,
        keep_seconds: float = KEEP_SECONDS,
    ) -> None:
        self._lease = lease_seconds
        self._keep = keep_seconds
        self._lock = threading.Lock()
        self._writes = 0
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA busy_timeout = 5000")
        self._db.execute(_QUERIES["create_table"])

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()

    def _claim(self, message_id: str, now: float) -> Claim:
        with self._lock:
            params = {"id": message_id, "now": now, "stale_before": now - self._lease}
            if self._db.execute(_QUERIES["claim"], params).rowcount == 1:
                return "new"
            row = self._db.execute(_QUERIES["state"], {"id": message_id}).fetchone()
            return "done" if row is not None and row[0] == "done" else "busy"

    def _done(self, message_id: str, now: float) -> None:
        with self._lock:
            self._db.execute(_QUERIES["done"], {"id": message_id, "now": now})
            self._writes += 1
            if self._writes % PRUNE_EVERY == 0:
                self._db.execute(_QUERIES["prune"], {"before": now - self._keep})

    def _release(self, message_id: str) -> None:
        with self._lock:
            self._db.execute(_QUERIES["release"], {"id": message_id})

    async def claim(self, message_id: str, now: float) -> Claim:
        """Claim ``message_id`` for handling, or say why not."""
        return await asyncio.to_thread(self._claim, message_id, now)

    async def done(self, message_id: str, now: float) -> None:
        """Later duplicates are ``done``."""
        await asyncio.to_thread(self._done, message_id, now)

    async def release(self, message_id: str) -> None:
        """The next delivery of the id is ``new`` again."""
        await asyncio.to_thread(self._release, message_id)
