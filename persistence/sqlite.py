"""The SQLite driver: WAL, one writer connection, a few read-only reader connections.

Each script (a store verb) runs whole and synchronously on its connection's aiosqlite thread,
so a cancelled request can never leave a transaction half-done and a write costs one thread
hop; writes that arrive together share one commit (``_transaction``).

Processes writing one file (``--workers N``, the CLI beside a server) take turns through an
exclusive ``flock`` on ``<file>-lock`` around each group: a writer waiting for another looks
again within a millisecond of its commit, where SQLite's own busy handler sleeps 1, 2, 5, 10 …
up to 100 ms between looks. A turn that does not come within the busy timeout is a locked
database (503), as SQLite's own lock is. Writers that do not take the lock (the ``sqlite3``
shell) still meet SQLite's lock and its ``busy_timeout``.
"""

from __future__ import annotations

import asyncio
import fcntl
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
from persistence.base import Store
from persistence.script import Run, Script, Statement, Wake, Want
from persistence.sqlfiles import load_queries

T = TypeVar("T")
QUERIES = load_queries("sqlite")
READERS = 4
READER_CACHE_KIB = 256
"""Each reader's page cache (SQLite's default is 2,000 KiB). In WAL mode a reader drops its
cache at its next read after any commit, and list pages read through the OS's cache cost no
more CPU (measured at 1,000,000 parked); four full default caches were ~7 MB resident."""
BUSY_TIMEOUT_MS = 5000
MAX_GROUP = 256
TURN_FIRST_PAUSE_S = 0.00005
TURN_LONGEST_PAUSE_S = 0.001
"""How often a writer looks again for its turn: from 50 µs, doubling, to 1 ms."""


def _configure(conn: sqlite3.Connection, *, writer: bool, busy_timeout_ms: int) -> None:
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA foreign_keys = ON")
    if writer:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
    else:
        conn.execute("PRAGMA query_only = ON")
        conn.execute(f"PRAGMA cache_size = -{READER_CACHE_KIB}")


def _translate(exc: sqlite3.Error) -> StoreError:
    text = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError) and any(
        word in text for word in ("locked", "busy", "readonly", "disk", "unable to open", "full")
    ):
        return StoreUnavailable(f"database unavailable: {exc}")
    return StoreError(f"database error: {exc}")


def lock_path(path: Path) -> Path:
    """The file whose ``flock`` the writers of the database ``path`` take turns on."""
    return path.with_name(path.name + "-lock")


def make_private(path: Path) -> None:
    """Create the database's folder (0700), file and writers' lock file (0600) if missing;
    tighten them and the ``-wal`` / ``-shm`` to 0600 where others may read them (they hold
    per-wait secrets; whoever may open the lock file may stall the writers).

    SQLite creates ``-wal`` and ``-shm`` with the mode of the database file itself.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    for file in (path, lock_path(path)):
        os.close(os.open(file, os.O_RDWR | os.O_CREAT, 0o600))
    wal, shm = path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")
    for file in (path, wal, shm, lock_path(path)):
        keep_private(file)


def _execute(conn: sqlite3.Connection, statement: Statement) -> Any:
    name, params, want, text, _alone = statement  # alone: every script is in a transaction
    if want is Want.DIALECT:
        return "sqlite"
    sql = QUERIES[name] if text is None else text("sqlite")
    if want is Want.MANY:
        conn.executemany(sql, params)
    elif want is Want.SCRIPT:
        for part in _statements(sql):
            conn.execute(part)
    else:
        cursor = conn.execute(sql, params)
        if want is Want.ROW:
            return cursor.fetchone()
        return cursor.fetchall() if want is Want.ROWS else cursor.rowcount
    return None


def _run(conn: sqlite3.Connection, script: Script[T]) -> tuple[T, list[Wake]]:
    """Run a whole script on ``conn`` (on its thread)."""
    run = Run(script)
    step = run.first()
    while step is not None:
        step = run.send(_execute(conn, step))
    return run.value, run.wakes


def _run_in_snapshot(conn: sqlite3.Connection, script: Script[T]) -> tuple[T, list[Wake]]:
    """Run a read-only script in one read transaction (on its thread)."""
    conn.execute("BEGIN")
    try:
        return _run(conn, script)
    finally:
        conn.execute("COMMIT")


class SqliteDatabase:
    """One SQLite file: a writer connection and a pool of readers."""

    dialect = "sqlite"

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._writer: aiosqlite.Connection | None = None
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all_readers: list[aiosqlite.Connection] = []
        self._pending: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._lock: int | None = None
        """The writers' lock file, open while the writer is."""

    async def open(self, heard: Callable[[Wake], None] | None = None) -> None:
        """Open the writer (creating the file and folder) and the readers (one process: no
        other replica to hear)."""
        try:
            make_private(self.path)
            self._lock = os.open(lock_path(self.path), os.O_RDWR | os.O_CLOEXEC)
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
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    @staticmethod
    async def _call(conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        # aiosqlite runs ``fn`` on the connection's own thread, as it does for its own methods.
        def run() -> T:
            return fn(conn._conn)

        try:
            return await asyncio.shield(conn._execute(run))  # type: ignore[no-untyped-call]
        except sqlite3.Error as exc:
            raise _translate(exc) from exc

    async def write(self, script: Callable[[], Script[T]]) -> tuple[T, list[Wake]]:
        """Run the script ``script()`` makes in a write transaction; its value and wake-ups
        once it has committed.

        Writes that arrive while another batch is committing are grouped: one
        ``BEGIN IMMEDIATE`` … ``COMMIT`` (one fsync) for the whole group. One write's failure
        undoes only that write: the group is rolled back and run again without it (which is
        why a write is handed over as something that makes its script). Nobody hears of a
        result before the commit that makes it durable.
        """
        if self._writer is None:
            raise StoreUnavailable("store is not open")
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((lambda conn: _run(conn, script()), done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="waitgate-sqlite-writer")
        # A cancelled caller cancels only its own notice: the write still runs in its group.
        result: tuple[T, list[Wake]] = await done
        return result

    async def _flush(self) -> None:
        while self._pending and self._writer is not None:
            jobs, self._pending = self._pending[:MAX_GROUP], self._pending[MAX_GROUP:]
            try:
                assert self._lock is not None  # opened before the writer, closed after it
                group = functools.partial(
                    _group, jobs=jobs, lock=self._lock, timeout_ms=self._busy_timeout_ms
                )
                outcomes = await self._call(self._writer, group)
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

    async def read(self, script: Script[T], *, snapshot: bool = False) -> T:
        """Run a read-only ``script`` on a free reader connection (``snapshot``: in one read
        transaction, which in WAL mode sees the database as of its first statement)."""
        reader = await self._readers.get()
        run = _run_in_snapshot if snapshot else _run
        try:
            value, _ = await self._call(reader, functools.partial(run, script=script))
            return value
        finally:
            self._readers.put_nowait(reader)


class SqliteStore(Store):
    """A ``Store`` in one SQLite file."""

    db: SqliteDatabase

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = Path(path)
        super().__init__(SqliteDatabase(self.path, busy_timeout_ms=busy_timeout_ms))

    @classmethod
    def from_url(cls, url: str) -> SqliteStore:
        """``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``."""
        return cls(url.removeprefix("sqlite:///"))


def _group(
    conn: sqlite3.Connection,
    jobs: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]],
    lock: int,
    timeout_ms: int,
) -> list[tuple[bool, Any]]:
    """Run the jobs in one transaction and commit once (``_transaction``). The writers'
    ``lock`` is held from before ``BEGIN`` to after ``COMMIT``."""
    _take_turn(lock, timeout_ms)
    try:
        return _transaction(conn, [fn for fn, _ in jobs])
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)


def _take_turn(lock: int, timeout_ms: int) -> None:
    """Take the writers' lock, waiting up to ``timeout_ms`` (the pauses hold no GIL)."""
    deadline = time.monotonic() + timeout_ms / 1000
    pause = TURN_FIRST_PAUSE_S
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise sqlite3.OperationalError("database is locked by another writer") from None
        time.sleep(pause)
        pause = min(pause * 2, TURN_LONGEST_PAUSE_S)


def _transaction(
    conn: sqlite3.Connection, jobs: list[Callable[[sqlite3.Connection], Any]]
) -> list[tuple[bool, Any]]:
    """Each job's outcome: ``(True, value)`` or ``(False, exception)``, committed together.

    The jobs run one after the other with nothing between them. When one raises, the group
    goes back to its start (a savepoint around the whole group) and runs again without that
    job: what the others wrote is made once, what the failing one wrote is undone. A savepoint
    per job would do the same with two statements more per write (2% of a resume's work),
    where failures are rare (a constraint, a script's own refusal)."""
    failed: dict[int, Exception] = {}
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("SAVEPOINT grouped")
        while True:
            values = _until_one_fails(conn, jobs, failed)
            if values is not None:
                break
            conn.execute("ROLLBACK TO grouped")
        conn.execute("RELEASE grouped")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return [(False, failed[n]) if n in failed else (True, values[n]) for n in range(len(jobs))]


def _until_one_fails(
    conn: sqlite3.Connection,
    jobs: list[Callable[[sqlite3.Connection], Any]],
    failed: dict[int, Exception],
) -> dict[int, Any] | None:
    """Run every job not ``failed`` yet: their values, or ``None`` once one fails (added to
    ``failed``, translated if it is SQLite's)."""
    values = {}
    for n, job in enumerate(jobs):
        if n in failed:
            continue
        try:
            values[n] = job(conn)
        except Exception as exc:
            failed[n] = _translate(exc) if isinstance(exc, sqlite3.Error) else exc
            return None
    return values


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (no semicolons inside our literals)."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
