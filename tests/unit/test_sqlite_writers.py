"""Several writers of one SQLite file (``--workers N``, the CLI beside a server) take turns
through the writers' lock: none meets SQLite's own lock, so none waits in its busy handler or
fails for it; a turn that does not come within the busy timeout is a locked database; the lock
goes when the store closes."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.domain import NewExecution
from gateway.errors import StoreError, StoreUnavailable
from persistence import script as q
from persistence.script import Script
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
    store.db._sqlite_wait_ms = 0
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


def _statements_by_thread(store: SqliteStore) -> tuple[list[tuple[str, int]], Callable[[], None]]:
    """Record each statement the writer runs (its first word) with the thread that ran it;
    the function that stops recording."""
    writer = store.db._writer
    assert writer is not None
    ran: list[tuple[str, int]] = []
    writer._conn.set_trace_callback(
        lambda sql: ran.append((sql.split()[0].upper(), threading.get_ident()))
    )
    return ran, lambda: writer._conn.set_trace_callback(None)


async def test_brief_writes_run_on_the_event_loop_and_commit_on_the_writers_thread(
    tmp_path: Path,
) -> None:
    """A group of brief writes (the request path's) whose turn is free runs on the event loop;
    only its ``COMMIT`` with the fsync goes to the writer's thread."""
    store = await _opened(tmp_path / "w.db")
    ran, stop = _statements_by_thread(store)
    try:
        assert len(await _create(store, 5)) == 5
    finally:
        stop()
        await store.close()
    loop = threading.get_ident()
    assert [word for word, _ in ran].count("INSERT") == 5
    assert {thread for word, thread in ran if word in ("BEGIN", "INSERT")} == {loop}
    (commit,) = [thread for word, thread in ran if word == "COMMIT"]
    assert commit != loop


async def test_a_brief_group_meeting_sqlites_lock_waits_for_it_off_the_event_loop(
    tmp_path: Path,
) -> None:
    """A writer that does not take turns (the ``sqlite3`` shell) holds SQLite's lock: brief
    writes wait for it on the writer's thread, the event loop goes on meanwhile, and they are
    made once it is let go."""
    path = tmp_path / "w.db"
    store = await _opened(path)
    ran, stop = _statements_by_thread(store)
    shell = sqlite3.connect(path, isolation_level=None)
    try:
        shell.execute("BEGIN IMMEDIATE")
        pending = asyncio.ensure_future(_create(store, 3))
        await asyncio.sleep(0.05)  # the event loop is not held
        assert not pending.done()
        shell.execute("ROLLBACK")
        assert len(await asyncio.wait_for(pending, 10)) == 3
    finally:
        stop()
        shell.close()
        await store.close()
    loop = threading.get_ident()
    tried, waited = [thread for word, thread in ran if word == "BEGIN"]
    assert tried == loop != waited
    assert {thread for word, thread in ran if word == "INSERT"} == {waited}


async def test_a_write_that_is_not_brief_runs_in_a_group_of_its_own_on_the_writers_thread(
    tmp_path: Path,
) -> None:
    """A write that may take long (here a retention prune) runs on the writer's thread, where
    the event loop goes on beside its statements, in a group apart: brief writes that came
    with it stay on the loop, in the order they came."""
    store = await _opened(tmp_path / "w.db")
    ran, stop = _statements_by_thread(store)

    async def created() -> int:
        return (await store.create_execution(NewExecution(workflow_id="w"), NOW)).id

    try:
        made = await asyncio.gather(
            *(created() for _ in range(3)),
            store.prune(cutoff=0, floor=0, batch=10),
            *(created() for _ in range(2)),
        )
    finally:
        stop()
        await store.close()
    assert made == [1, 2, 3, 0, 4, 5]  # the prune pruned nothing
    loop = threading.get_ident()
    words = [word for word, _ in ran]
    assert words.count("COMMIT") == 3  # creates, prune, creates
    assert {thread for word, thread in ran if word == "INSERT"} == {loop}
    assert loop not in {thread for word, thread in ran if word == "DELETE"}


def _undone_at_commit(execution_id: int) -> Script[int]:
    """A write whose fault shows only at COMMIT: a deferred foreign key left dangling."""
    yield from q.script("defer", "PRAGMA defer_foreign_keys = ON")
    cancel = "UPDATE executions SET status = 'canceled' WHERE id = :id"
    changed: int = yield q.Statement("cancel", {"id": execution_id}, q.Want.COUNT, lambda _: cancel)
    dangling = (
        "INSERT INTO resume_attempts (execution_id, seq, attempted_at, method, status_code,"
        " outcome, reason) VALUES (:id + 1000, 1, 0, 'POST', 200, 'accepted', 'dangling')"
    )
    yield q.Statement("dangle", {"id": execution_id}, q.Want.COUNT, lambda _: dangling)
    return changed


async def test_a_group_whose_commit_fails_leaves_nothing_and_lets_go_of_the_lock(
    tmp_path: Path,
) -> None:
    """When the COMMIT of a brief group fails on the writer's thread, every write of the group
    gets the error, none of them is in the file, and the next writer (of this process or
    another) gets its turn."""
    path = tmp_path / "w.db"
    store, other = await _opened(path), await _opened(path)
    try:
        (eid,) = await _create(store, 1)
        outcomes = await asyncio.gather(
            store.db.write(lambda: _undone_at_commit(eid), brief=True),
            store.create_execution(NewExecution(workflow_id="lost"), NOW),
            return_exceptions=True,
        )
        assert all(isinstance(o, StoreError) for o in outcomes), outcomes
        assert "FOREIGN KEY" in str(outcomes[0]).upper()
        with sqlite3.connect(path) as conn:
            rows = conn.execute("SELECT workflow_id, status FROM executions").fetchall()
        assert rows == [("w", "running")]
        assert len(await asyncio.wait_for(_create(other, 2), 5)) == 2
        assert len(await asyncio.wait_for(_create(store, 2), 5)) == 2
    finally:
        await store.close()
        await other.close()
