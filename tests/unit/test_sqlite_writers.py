"""Several writers of one SQLite file (``--workers N``, the CLI beside a server) take turns
through the writers' lock: none meets SQLite's own lock, so none waits in its busy handler or
fails for it; a turn that does not come within the busy timeout is a locked database; the lock
goes when the store closes."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from pathlib import Path

import pytest

from gateway.domain import NewExecution
from gateway.errors import StoreUnavailable
from persistence.sqlite import SqliteStore, lock_path

NOW = 1_800_000_000_000


async def _opened(path: Path, busy_timeout_ms: int = 5000) -> SqliteStore:
    store = SqliteStore(path, busy_timeout_ms=busy_timeout_ms)
    await store.open()
    await store.migrate()
    return store


async def _impatient(path: Path) -> SqliteStore:
    """A store that waits for its turn as usual but not for SQLite's own lock: a writer that
    met another's transaction would fail at once."""
    store = await _opened(path)
    writer = store.db._writer
    assert writer is not None
    await writer.execute("PRAGMA busy_timeout = 0")
    return store


async def _create(store: SqliteStore, count: int) -> list[int]:
    async def one() -> int:
        return (await store.create_execution(NewExecution(workflow_id="w"), NOW)).id

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def test_two_writers_of_one_file_never_meet_sqlites_lock(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    first, second = await _impatient(path), await _impatient(path)
    try:
        for _ in range(5):
            made = await asyncio.gather(_create(first, 60), _create(second, 60))
            assert all(len(ids) == 60 for ids in made)
        with sqlite3.connect(path) as conn:
            counts = conn.execute("SELECT count(*), count(DISTINCT id) FROM executions").fetchone()
        assert counts == (600, 600)
    finally:
        await first.close()
        await second.close()


async def test_without_the_lock_the_same_writers_fail(tmp_path: Path) -> None:
    """The test above can fail: the same writers, one of them not taking turns, do meet."""
    path = tmp_path / "w.db"
    first, second = await _impatient(path), await _impatient(path)
    assert second.db._lock is not None
    os.close(second.db._lock)
    second.db._lock = os.open(tmp_path / "elsewhere", os.O_RDWR | os.O_CREAT)

    async def both_write_until_one_fails() -> None:
        for _ in range(20):
            await asyncio.gather(_create(first, 60), _create(second, 60))

    try:
        with pytest.raises(StoreUnavailable, match="locked"):
            await both_write_until_one_fails()
    finally:
        await first.close()
        await second.close()


async def test_a_writer_waits_for_the_lock_and_then_writes(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    store = await _opened(path)
    holder = os.open(lock_path(path), os.O_RDWR)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        pending = asyncio.ensure_future(_create(store, 3))
        await asyncio.sleep(0.05)
        assert not pending.done()  # waiting for the lock, not failing
        fcntl.flock(holder, fcntl.LOCK_UN)
        assert len(await asyncio.wait_for(pending, 10)) == 3
    finally:
        os.close(holder)
        await store.close()


async def test_a_turn_that_does_not_come_is_a_locked_database(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    store = await _opened(path, busy_timeout_ms=50)
    holder = os.open(lock_path(path), os.O_RDWR)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with pytest.raises(StoreUnavailable, match="locked by another writer"):
            await _create(store, 2)
        fcntl.flock(holder, fcntl.LOCK_UN)
        assert len(await _create(store, 2)) == 2
    finally:
        os.close(holder)
        await store.close()


async def test_the_lock_file_is_closed_with_the_store(tmp_path: Path) -> None:
    store = await _opened(tmp_path / "w.db")
    lock = store.db._lock
    assert lock is not None
    await store.close()
    assert store.db._lock is None
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(lock)
