"""How a driver runs a script's statements: all of a write script's in one transaction on
SQLite; on PostgreSQL, from its first statement not marked ``alone`` (those before it run on
their own), so a failure after that statement leaves nothing of the script's writes. A read
script asked to run as a snapshot sees one state of the database in all its statements."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
from collections.abc import Callable

import asyncpg
import pytest

from gateway.domain import ExecutionQuery, NewExecution, Status
from gateway.errors import StoreError
from persistence import script as q
from persistence.base import Store
from persistence.script import Script

NOW = 1_800_000_000_000
TRANSACTION_ID = "SELECT txid_current()::text AS id"


def _text(sql: str) -> Callable[[str], str]:
    return lambda _dialect: sql


def _transaction(*, alone: bool) -> Script[str]:
    """The transaction id the statement runs in (a new one each time it runs on its own)."""
    found = yield from q.rows("txid", q.NO_PARAMS, _text(TRANSACTION_ID), alone=alone)
    return str(found[0]["id"])


def _cancel(execution_id: int) -> Script[int]:
    sql = "UPDATE executions SET status = 'canceled' WHERE id = :id"
    changed: int = yield q.Statement("cancel", {"id": execution_id}, q.Want.COUNT, _text(sql))
    return changed


class Boom(Exception):
    pass


async def test_a_failure_after_the_first_write_undoes_it(store: Store) -> None:
    eid = (await store.create_execution(NewExecution("wf"), NOW)).id

    def script() -> Script[None]:
        assert (yield from q.row("get_execution", {"id": eid}, alone=True)) is not None
        assert (yield from _cancel(eid)) == 1
        raise Boom

    with pytest.raises(Boom):
        await store.db.write(script)
    execution = await store.get_execution(eid)
    assert execution is not None
    assert execution.status is Status.RUNNING


async def test_a_failing_write_among_others_committed_together_undoes_only_its_own(
    store: Store,
) -> None:
    """SQLite commits writes that arrive together in one transaction, each in its own
    savepoint: the failing write leaves nothing, every other one is made exactly once."""
    ids = [(await store.create_execution(NewExecution("wf"), NOW)).id for _ in range(3)]

    def cancel_then_fail() -> Script[None]:
        assert (yield from _cancel(ids[1])) == 1
        raise Boom

    outcomes = await asyncio.gather(
        store.db.write(lambda: _cancel(ids[0])),
        store.create_execution(NewExecution("made once"), NOW),
        store.db.write(cancel_then_fail),
        store.db.write(lambda: _cancel(ids[2])),
        return_exceptions=True,
    )
    assert outcomes[0] == (1, [])
    assert isinstance(outcomes[2], Boom)
    assert outcomes[3] == (1, [])
    seen = await asyncio.gather(*(store.get_execution(i) for i in ids))
    statuses = [e.status if e else None for e in seen]
    assert statuses == [Status.CANCELED, Status.RUNNING, Status.CANCELED]
    made = ExecutionQuery(workflow_id="made once", include_running=True)
    assert len(await store.list_executions(made)) == 1


@pytest.mark.parametrize("brief", [False, True])
async def test_failing_writes_in_one_group_undo_only_their_own_and_keep_their_errors(
    store: Store, brief: bool
) -> None:
    """Two writes of a group fail (one by raising, one on a constraint): each caller gets its
    own error, each other write is made exactly once, with the value it returned (a group of
    brief writes runs on the event loop on SQLite, any other on the writer's thread)."""
    ids = [(await store.create_execution(NewExecution("wf"), NOW)).id for _ in range(4)]
    unnamed = "UPDATE executions SET workflow_id = NULL WHERE id = :id"

    def cancel_then_unname(execution_id: int) -> Script[int]:
        assert (yield from _cancel(execution_id)) == 1
        params = {"id": execution_id}
        done: int = yield q.Statement("unname", params, q.Want.COUNT, _text(unnamed))
        return done

    def cancel_then_fail(execution_id: int) -> Script[None]:
        assert (yield from _cancel(execution_id)) == 1
        raise Boom

    outcomes = await asyncio.gather(
        store.db.write(lambda: _cancel(ids[0]), brief=brief),
        store.db.write(lambda: cancel_then_fail(ids[1]), brief=brief),
        store.create_execution(NewExecution("made once"), NOW),
        store.db.write(lambda: cancel_then_unname(ids[2]), brief=brief),
        store.db.write(lambda: _cancel(ids[3]), brief=brief),
        return_exceptions=True,
    )
    assert outcomes[0] == (1, [])
    assert outcomes[4] == (1, [])
    assert isinstance(outcomes[1], Boom)
    assert isinstance(outcomes[3], StoreError)
    assert "null" in str(outcomes[3]).lower()
    made = await store.list_executions(
        ExecutionQuery(workflow_id="made once", include_running=True)
    )
    assert [e.id for e in made] == [outcomes[2].id]  # type: ignore[union-attr]
    seen = await asyncio.gather(*(store.get_execution(i) for i in ids))
    statuses = [e.status if e else None for e in seen]
    assert statuses == [Status.CANCELED, Status.RUNNING, Status.RUNNING, Status.CANCELED]


async def test_sqlite_writes_committed_together_take_no_savepoint_each(
    store: Store, backend_url: str
) -> None:
    """The group's writes run one after the other inside one savepoint of the group's, not
    one each (two statements per write that a resume would pay for nothing)."""
    if not backend_url.startswith("sqlite"):
        pytest.skip("PostgreSQL runs each write in its own transaction")
    from persistence.sqlite import SqliteDatabase

    db = store.db
    assert isinstance(db, SqliteDatabase)
    assert db._writer is not None
    ids = [(await store.create_execution(NewExecution("wf"), NOW)).id for _ in range(5)]
    ran: list[str] = []
    await db._call(db._writer, lambda conn: conn.set_trace_callback(ran.append))
    try:
        await asyncio.gather(*(db.write(functools.partial(_cancel, i)) for i in ids))
    finally:
        await db._call(db._writer, lambda conn: conn.set_trace_callback(None))
    words = [statement.split()[0].upper() for statement in ran]
    assert words.count("UPDATE") == 5
    assert words.count("SAVEPOINT") == 1
    assert words.count("COMMIT") == 1
    assert "ROLLBACK" not in words


async def test_postgres_begins_at_the_first_statement_not_alone(
    store: Store, backend_url: str
) -> None:
    if not backend_url.startswith("postgres"):
        pytest.skip("SQLite runs each write script in its writer's transaction")
    eid = (await store.create_execution(NewExecution("wf"), NOW)).id

    def script() -> Script[list[str]]:
        assert (yield from q.dialect()) == "postgres"  # asks nothing of the database
        seen = [(yield from _transaction(alone=True)), (yield from _transaction(alone=True))]
        yield from _cancel(eid)
        seen += [(yield from _transaction(alone=True)), (yield from _transaction(alone=False))]
        return seen

    (first, second, inside, still), _ = await store.db.write(script)
    assert len({first, second, inside}) == 3  # each alone, until the write begins one
    assert inside == still

    def twice(*, alone: bool) -> Script[list[str]]:
        return [(yield from _transaction(alone=alone)), (yield from _transaction(alone=alone))]

    one, two = (await store.db.write(lambda: twice(alone=False)))[0]
    assert one == two
    one, two = await store.db.read(twice(alone=False))
    assert one != two  # a read runs without one


def _commit_elsewhere(url: str, execution_id: int, workflow_id: str) -> None:
    """Rename the execution in a transaction of another connection, committed before this
    returns (called from inside a script, between two of its statements)."""
    sql = "UPDATE executions SET workflow_id = {} WHERE id = {}"
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as other:
            other.execute(sql.format("?", "?"), (workflow_id, execution_id))
        return

    async def rename() -> None:
        other = await asyncpg.connect(url)
        try:
            await other.execute(sql.format("$1", "$2"), workflow_id, execution_id)
        finally:
            await other.close()

    elsewhere = threading.Thread(target=lambda: asyncio.run(rename()))
    elsewhere.start()
    elsewhere.join(30)


@pytest.mark.parametrize("snapshot", [True, False])
async def test_a_snapshot_read_sees_the_database_as_of_its_first_statement(
    store: Store, backend_url: str, snapshot: bool
) -> None:
    """A list and its children (deliveries and their attempts, executions and their waits)
    read in two statements must not straddle a commit: with ``snapshot`` the second statement
    sees what the first saw; without, the commit made between them."""
    eid = (await store.create_execution(NewExecution("before"), NOW)).id

    def script() -> Script[tuple[str, str]]:
        first = yield from q.one("get_execution", {"id": eid})
        _commit_elsewhere(backend_url, eid, "after")
        second = yield from q.one("get_execution", {"id": eid})
        return first["workflow_id"], second["workflow_id"]

    seen = await store.db.read(script(), snapshot=snapshot)
    assert seen == (("before", "before") if snapshot else ("before", "after"))
