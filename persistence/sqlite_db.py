"""SQLite connections: WAL, one writer connection, a few read-only reader connections.

Each transaction runs as one synchronous function on its connection's aiosqlite thread, so a
cancelled request can never leave a transaction half-done and a write costs one thread hop.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from gateway.errors import StoreError, StoreUnavailable
from gateway.files import keep_private
from persistence.sqlfiles import load_migrations

T = TypeVar("T")
READERS = 4
BUSY_TIMEOUT_MS = 5000
MAX_GROUP = 256


def _configure(conn: sqlite3.Connection, *, writer: bool, busy_timeout_ms: int) -> None:
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA foreign_keys = ON")
    if writer:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
    else:
        conn.execute("PRAGMA query_only = ON")


def _translate(exc: sqlite3.Error) -> StoreError:
    text = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError) and any(
        word in text for word in ("locked", "busy", "readonly", "disk", "unable to open", "full")
    ):
        return StoreUnavailable(f"database unavailable: {exc}")
    return StoreError(f"database error: {exc}")


def make_private(path: Path) -> None:
    """Create the database's folder (0700) and file (0600) if missing; tighten the file and its
    ``-wal`` / ``-shm`` to 0600 where others may read them (they hold per-wait secrets).

    SQLite creates ``-wal`` and ``-shm`` with the mode of the database file itself.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        keep_private(file)


class SqliteDatabase:
    """One SQLite file: a writer connection, a pool of readers, and the migrations."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._writer: aiosqlite.Connection | None = None
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all_readers: list[aiosqlite.Connection] = []
        self._pending: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Open the writer (creating the file and folder) and the readers."""
        try:
            make_private(self.path)
        except OSError as exc:
            raise StoreUnavailable(f"database unavailable: {exc}") from exc
        try:
            self._writer = await aiosqlite.connect(self.path, isolation_level=None)
            await self._call(
                self._writer,
                lambda c: _configure(c, writer=True, busy_timeout_ms=self._busy_timeout_ms),
            )
            for _ in range(READERS):
                reader = await aiosqlite.connect(self.path, isolation_level=None)
                await self._call(
                    reader,
                    lambda c: _configure(c, writer=False, busy_timeout_ms=self._busy_timeout_ms),
                )
                self._all_readers.append(reader)
                self._readers.put_nowait(reader)
        except sqlite3.Error as exc:
            await self.close()
            raise _translate(exc) from exc

    async def close(self) -> None:
        """Finish the writes under way, then close every connection."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        for conn in [*self._all_readers, self._writer]:
            if conn is not None:
                await conn.close()
        self._all_readers.clear()
        self._readers = asyncio.Queue()
        self._writer = None

    @staticmethod
    async def _call(conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        # aiosqlite runs ``fn`` on the connection's own thread, as it does for its own methods.
        def run() -> T:
            return fn(conn._conn)

        try:
            return await asyncio.shield(conn._execute(run))  # type: ignore[no-untyped-call]
        except sqlite3.Error as exc:
            raise _translate(exc) from exc

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in a write transaction; return once that transaction has committed.

        Writes that arrive while another batch is committing are grouped: one
        ``BEGIN IMMEDIATE`` … ``COMMIT`` (one fsync) for the whole group, each write inside its
        own savepoint, so one write's failure rolls back only that write. Nobody hears of a
        result before the commit that makes it durable.
        """
        if self._writer is None:
            raise StoreUnavailable("store is not open")
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((fn, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="waitgate-sqlite-writer")
        result: T = await asyncio.shield(done)
        return result

    async def _flush(self) -> None:
        while self._pending and self._writer is not None:
            jobs, self._pending = self._pending[:MAX_GROUP], self._pending[MAX_GROUP:]
            try:
                outcomes = await self._call(self._writer, functools.partial(_group, jobs=jobs))
            except StoreError as exc:
                for _, done in jobs:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for (_, done), (ok, value) in zip(jobs, outcomes, strict=True):
                if done.done():
                    continue
                if ok:
                    done.set_result(value)
                else:
                    done.set_exception(value)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on a free reader connection."""
        reader = await self._readers.get()
        try:
            return await self._call(reader, fn)
        finally:
            self._readers.put_nowait(reader)

    async def migrate(self) -> list[int]:
        """Apply pending migrations, each in its own transaction."""
        applied: list[int] = []
        for migration in load_migrations("sqlite"):

            def apply(
                conn: sqlite3.Connection, version: int = migration.version, sql: str = migration.sql
            ) -> bool:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations "
                    "(version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"
                )
                done = conn.execute(
                    "SELECT 1 FROM schema_migrations WHERE version = ?", (version,)
                ).fetchone()
                if done:
                    return False
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, time.time_ns() // 1_000_000),
                )
                return True

            if await self.write(apply):
                applied.append(migration.version)
        return applied

    async def pending_migrations(self) -> list[int]:
        """Versions not yet applied."""

        def read(conn: sqlite3.Connection) -> set[int]:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
            ).fetchone()
            if not exists:
                return set()
            return {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}

        done = await self.read(read)
        return [m.version for m in load_migrations("sqlite") if m.version not in done]

    async def ping(self) -> None:
        """A trivial read."""
        await self.read(lambda c: c.execute("SELECT 1").fetchone())


def _group(
    conn: sqlite3.Connection,
    jobs: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]],
) -> list[tuple[bool, Any]]:
    """Run each job in its own savepoint inside one transaction; commit once."""
    outcomes: list[tuple[bool, Any]] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for fn, _ in jobs:
            conn.execute("SAVEPOINT job")
            try:
                value = fn(conn)
            except Exception as exc:
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                outcomes.append((False, _translate(exc) if isinstance(exc, sqlite3.Error) else exc))
            else:
                conn.execute("RELEASE job")
                outcomes.append((True, value))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (no semicolons inside our literals)."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
