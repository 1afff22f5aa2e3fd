"""The SQLite driver: WAL, one writer connection, a few read-only reader connections.

Each script (a store verb) runs whole and synchronously, so a cancelled request can never leave
a transaction half-done, and writes that arrive together share one commit. A read runs on a
reader's aiosqlite thread. A group of writes runs on the writer's thread, or, when every write
of it is ``brief`` (one execution's few rows: the request path) and its turn is free, on the
event loop itself, with only its ``COMMIT`` and the fsync on the writer's thread: that thread
would hold the GIL for those statements all the same, and handing the GIL over for each of them
cost more than the statements.

Processes writing one file (``--workers N``, the CLI beside a server) take turns through an
exclusive ``flock`` on ``<file>-lock`` around each group: a writer waiting for another looks
again within a millisecond of its commit, where SQLite's own busy handler sleeps 1, 2, 5, 10 …
up to 100 ms between looks. A turn that does not come within the busy timeout is a locked
database (503), as SQLite's own lock is. Writers that do not take the lock (the ``sqlite3``
shell) still meet SQLite's lock: the writer connection's ``busy_timeout`` is 0, and only a
``BEGIN`` on the writer's thread waits for that lock, up to the busy timeout (``_begin``), so the
event loop never waits for another writer.
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
Job = Callable[[sqlite3.Connection], Any]
"""One write of a group: runs its script (made afresh) on the writer connection."""
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
        conn.execute("PRAGMA busy_timeout = 0")  # only ``_begin`` waits for SQLite's lock
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
        self._sqlite_wait_ms = busy_timeout_ms
        """How long ``BEGIN`` waits for SQLite's own lock, which a writer that does not take
        turns holds (the ``sqlite3`` shell), once this one has its turn."""
        self._writer: aiosqlite.Connection | None = None
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all_readers: list[aiosqlite.Connection] = []
        self._pending: list[tuple[Job, bool, asyncio.Future[Any]]] = []
        """Writes waiting for the next group: each job, whether it is brief, its caller's."""
        self._flusher: asyncio.Task[None] | None = None
        self._writing: asyncio.Future[list[tuple[bool, Any]]] | None = None
        """The group being written (``_write``)."""
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
            # The event loop runs brief groups on it while its thread is idle (``_write``).
            self._writer = await aiosqlite.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
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
        for running in (self._flusher, self._writing):
            if running is not None:
                await asyncio.gather(running, return_exceptions=True)
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

    async def write(
        self, script: Callable[[], Script[T]], *, brief: bool = False
    ) -> tuple[T, list[Wake]]:
        """Run the script ``script()`` makes in a write transaction; its value and wake-ups
        once it has committed.

        Writes that arrive while another batch is committing are grouped: one
        ``BEGIN IMMEDIATE`` … ``COMMIT`` (one fsync) for the whole group. One write's failure
        undoes only that write: the group is rolled back and run again without it (which is
        why a write is handed over as something that makes its script). ``brief``: the write
        touches a few rows of one execution, so a group of such writes may run on the event
        loop (see the module). Nobody hears of a result before the commit that makes it
        durable.
        """
        if self._writer is None:
            raise StoreUnavailable("store is not open")
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((lambda conn: _run(conn, script()), brief, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="waitgate-sqlite-writer")
        # A cancelled caller cancels only its own notice: the write still runs in its group.
        result: tuple[T, list[Wake]] = await done
        return result

    async def _flush(self) -> None:
        while self._pending and self._writer is not None:
            # A group is the writes waiting, in order, up to the first whose briefness differs:
            # a long write (retention, the audit trail) does not take brief ones off the loop.
            brief = self._pending[0][1]
            size = next(
                (n for n, (_, b, _) in enumerate(self._pending[:MAX_GROUP]) if b is not brief),
                min(len(self._pending), MAX_GROUP),
            )
            group, self._pending = self._pending[:size], self._pending[size:]
            # It runs to its end whatever becomes of the task waiting for it: a brief one holds
            # the writers' lock and a transaction between its hops.
            jobs = [job for job, _, _ in group]
            self._writing = writing = asyncio.ensure_future(self._write(jobs, brief))
            try:
                outcomes = await asyncio.shield(writing)
            except StoreError as exc:
                for _, _, done in group:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for (_, _, done), (ok, value) in zip(group, outcomes, strict=True):
                if done.done():
                    continue
                if ok:
                    done.set_result(value)
                else:
                    done.set_exception(value)

    async def _write(self, jobs: list[Job], brief: bool) -> list[tuple[bool, Any]]:
        """Run a group and commit it: each job's outcome (``_jobs``). A brief group whose turn
        and transaction are there at once runs on the event loop, and only its ``COMMIT`` on
        the writer's thread; any other group runs wholly there (``_group``), waiting for its
        turn as long as it must."""
        writer, lock = self._writer, self._lock
        assert writer is not None
        assert lock is not None  # opened before the writer, closed after it
        try:
            begun = brief and _begin_at_once(writer._conn, lock)  # its thread is idle
            if begun:
                outcomes = _ran(writer._conn, jobs, lock)
        except sqlite3.Error as exc:
            raise _translate(exc) from exc
        if begun:
            await self._call(writer, functools.partial(_commit, lock=lock))
            return outcomes
        group = functools.partial(
            _group,
            jobs=jobs,
            lock=lock,
            timeout_ms=self._busy_timeout_ms,
            sqlite_wait_ms=self._sqlite_wait_ms,
        )
        return await self._call(writer, group)

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
    conn: sqlite3.Connection, jobs: list[Job], lock: int, timeout_ms: int, sqlite_wait_ms: int
) -> list[tuple[bool, Any]]:
    """A whole group on the writer's thread: ``_begin``, ``_jobs``, ``_commit``."""
    _begin(conn, lock, timeout_ms, sqlite_wait_ms)
    outcomes = _ran(conn, jobs, lock)
    _commit(conn, lock)
    return outcomes


def _begin(conn: sqlite3.Connection, lock: int, timeout_ms: int, sqlite_wait_ms: int) -> None:
    """Take the writers' ``lock`` (``_take_turn``), then ``BEGIN IMMEDIATE``, waiting up to
    ``sqlite_wait_ms`` for SQLite's own lock; the turn is let go if the transaction cannot
    begin."""
    _take_turn(lock, timeout_ms)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(sqlite_wait_ms)}")
        try:
            conn.execute("BEGIN IMMEDIATE")
        finally:
            conn.execute("PRAGMA busy_timeout = 0")
    except BaseException:
        fcntl.flock(lock, fcntl.LOCK_UN)
        raise


def _begin_at_once(conn: sqlite3.Connection, lock: int) -> bool:
    """``_begin`` without waiting for the turn or for SQLite's lock: whether it began (on the
    event loop, which must not wait for another writer)."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        fcntl.flock(lock, fcntl.LOCK_UN)
        if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY:
            return False
        raise
    except BaseException:
        fcntl.flock(lock, fcntl.LOCK_UN)
        raise
    return True


def _ran(conn: sqlite3.Connection, jobs: list[Job], lock: int) -> list[tuple[bool, Any]]:
    """``_jobs``, letting go of the turn if the group fails as a whole."""
    try:
        return _jobs(conn, jobs)
    except BaseException:
        fcntl.flock(lock, fcntl.LOCK_UN)
        raise


def _commit(conn: sqlite3.Connection, lock: int) -> None:
    """Commit the group (rolled back if the commit fails), then let go of the writers' lock."""
    try:
        conn.execute("COMMIT")
    except BaseException:
        _roll_back(conn)
        raise
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)


def _roll_back(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


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


def _jobs(conn: sqlite3.Connection, jobs: list[Job]) -> list[tuple[bool, Any]]:
    """Run the jobs in the transaction begun: each one's ``(True, value)`` or
    ``(False, exception)``. On an error of the group's own, the transaction is rolled back and
    the error raised.

    The jobs run one after the other with nothing between them. When one raises, the group
    goes back to its start (a savepoint around the whole group) and runs again without that
    job: what the others wrote is made once, what the failing one wrote is undone. A savepoint
    per job would do the same with two statements more per write (2% of a resume's work),
    where failures are rare (a constraint, a script's own refusal)."""
    failed: dict[int, Exception] = {}
    try:
        conn.execute("SAVEPOINT grouped")
        while (values := _until_one_fails(conn, jobs, failed)) is None:
            conn.execute("ROLLBACK TO grouped")
        conn.execute("RELEASE grouped")
    except BaseException:
        _roll_back(conn)
        raise
    return [(False, failed[n]) if n in failed else (True, values[n]) for n in range(len(jobs))]


def _until_one_fails(
    conn: sqlite3.Connection, jobs: list[Job], failed: dict[int, Exception]
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
