"""Matching events is an index lookup, not a scan: the small sibling of
``tests/load/bench_events.py`` (20,000 waits instead of 1,000,000, correctness only, no timing).

Every wait shares its tenant key with 1 in 100 of the others, the case where looking keys up
one by one visits every wait of the tenant; the plan of the match statements must use the
(source, match_key) index, and each event must resume exactly the waits whose every key it has.
"""

from __future__ import annotations

import random
import secrets
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.domain import NewExecution, Status
from gateway.event_model import EventCondition, EventSource, IncomingEvent
from persistence import event_rows
from persistence.sqlfiles import load_migrations
from persistence.sqlite import QUERIES, SqliteStore
from tests.backends import postgres_admin_url, skip_without_postgres
from tests.load.bench_events import (
    FAILED,
    ORDER,
    SUCCEEDED,
    TENANT,
    TENANTS,
    conditions,
    shop_source,
)
from tests.load.bulk_events import fill_event_waits

WAITS = 20_000
NOW = 1_767_225_700_000


def stripe_like(
    n: str, tenant: str, name: str = SUCCEEDED, key: str | None = None
) -> IncomingEvent:
    body = {
        "id": key,
        "type": name,
        "data": {"object": {"metadata": {"orderId": n, "tenant": tenant}}},
    }
    return IncomingEvent("shop", key, name, body, {})


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, range]:
    db = tmp_path_factory.mktemp("match") / "waitgate.db"
    ids = fill_event_waits(db, WAITS, shop_source("s" * 24), conditions)
    return db, ids


@pytest.fixture
async def store(loaded: tuple[Path, range]) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(loaded[0])
    await opened.open()
    yield opened
    await opened.close()


def _plan(db: Path, name: str, params: dict[str, object]) -> str:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("EXPLAIN QUERY PLAN " + QUERIES[name], params).fetchall()
    finally:
        conn.close()
    return "\n".join(r[-1] for r in rows)


@pytest.mark.parametrize("name", ["match_event_key", "match_event_keyless"])
def test_the_match_statements_search_the_match_key_index(
    loaded: tuple[Path, range], name: str
) -> None:
    key = event_rows.match_key({ORDER: "ord_7", TENANT: "t-7"})
    plan = _plan(loaded[0], name, {"source": "shop", "name": SUCCEEDED, "match_key": key})
    assert "USING INDEX wait_events_match (source=? AND match_key=?)" in plan
    assert "SCAN" not in plan


async def test_each_event_resumes_exactly_the_waits_it_matches(
    store: SqliteStore, loaded: tuple[Path, range]
) -> None:
    ids = loaded[1]
    rng = random.Random(13)
    paid, failed, wrong_tenant = (rng.sample(range(WAITS), 20) for _ in range(3))
    paid = [n for n in paid if n not in failed]
    wrong_tenant = [n for n in wrong_tenant if n not in paid and n not in failed]
    for n in paid:
        outcome = await store.record_event(stripe_like(f"ord_{n}", f"t-{n % TENANTS}"), NOW)
        assert outcome is not None
        assert outcome.resumed == ((ids[n], 1),)
    for n in failed:  # the other condition: the order alone, whatever the tenant says
        outcome = await store.record_event(stripe_like(f"ord_{n}", "t-none", FAILED), NOW)
        assert outcome is not None
        assert outcome.resumed == ((ids[n], 1),)
    for n in wrong_tenant:  # every key must match: kept, nothing resumed
        outcome = await store.record_event(stripe_like(f"ord_{n}", f"t-{n % TENANTS + 1}"), NOW)
        assert outcome is not None
        assert outcome.resumed == ()
    again = paid[0]
    outcome = await store.record_event(stripe_like(f"ord_{again}", f"t-{again % TENANTS}"), NOW)
    assert outcome is not None
    assert outcome.resumed == ()  # its wait has ended
    resumed = set(paid) | set(failed)
    for n in [*resumed, *wrong_tenant, *rng.sample(range(WAITS), 20)]:
        execution = await store.get_execution(ids[n])
        assert execution is not None
        assert execution.status == (Status.RUNNING if n in resumed else Status.WAITING)


async def test_a_key_shared_by_many_waits_alone_resumes_them_all(store: SqliteStore) -> None:
    await store.create_event_source(EventSource("tenants", {"type": "none"}), NOW)
    tenant_wide = (EventCondition("tenants", None, ((TENANT, "t-3"),)),)
    parked = []
    for _ in range(3):
        execution = await store.create_execution(NewExecution("wf"), NOW)
        assert await store.park(execution.id, None, None, NOW, events=tenant_wide)
        parked.append(execution.id)
    event = IncomingEvent(
        "tenants", None, None, {"data": {"object": {"metadata": {"tenant": "t-3"}}}}
    )
    outcome = await store.record_event(event, NOW)
    assert outcome is not None
    assert outcome.resumed == tuple((eid, 1) for eid in parked)


BEFORE_0008 = {"b.ünï": "x:1é", "a": "", "a.b": "12:3", "a.ß": "z"}


def test_migration_0008_writes_the_match_keys_the_code_looks_up(tmp_path: Path) -> None:
    """Conditions parked before 0008 get the same match key and shape the code computes."""
    conn = sqlite3.connect(tmp_path / "old.db")
    for migration in load_migrations("sqlite")[:7]:
        conn.executescript(migration.sql)
    conn.execute("INSERT INTO event_sources VALUES ('s', NULL, '{}', NULL, NULL, 0, 0, 0, 0)")
    conn.execute(
        "INSERT INTO executions (id, workflow_id, mode, status, started_at) "
        "VALUES (1, 'wf', 'integrated', 'waiting', 0)"
    )
    values = BEFORE_0008
    conn.execute("INSERT INTO wait_events VALUES (1, 1, 0, 's', NULL, 4), (1, 1, 1, 's', NULL, 0)")
    conn.executemany(
        "INSERT INTO wait_match_keys VALUES (1, 1, 0, 's', ?, ?)", list(values.items())
    )
    conn.executescript(load_migrations("sqlite")[7].sql)
    keys = conn.execute("SELECT match_key FROM wait_events ORDER BY cond").fetchall()
    shapes = conn.execute("SELECT shape FROM event_source_shapes").fetchall()
    conn.close()
    assert keys == [(event_rows.match_key(values),), (None,)]
    assert shapes == [(event_rows.shape(values),)]
    assert event_rows.shape_paths(shapes[0][0]) == sorted(values)


async def test_migration_0008_on_postgresql_writes_the_same_match_keys() -> None:
    skip_without_postgres()
    import asyncpg

    admin = postgres_admin_url()
    assert admin is not None
    name = f"waitgate_0008_{secrets.token_hex(4)}"
    server = await asyncpg.connect(admin)
    await server.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = await asyncpg.connect(admin.rsplit("/", 1)[0] + "/" + name)
        try:
            for migration in load_migrations("postgres")[:7]:
                await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO event_sources VALUES ('s', NULL, '{}', NULL, NULL, 0, 0, 0, 0)"
            )
            await conn.execute(
                "INSERT INTO executions (id, workflow_id, mode, status, started_at) "
                "OVERRIDING SYSTEM VALUE VALUES (1, 'wf', 'integrated', 'waiting', 0)"
            )
            await conn.execute(
                "INSERT INTO wait_events VALUES (1, 1, 0, 's', NULL, 4), (1, 1, 1, 's', NULL, 0)"
            )
            await conn.executemany(
                "INSERT INTO wait_match_keys VALUES (1, 1, 0, 's', $1, $2)",
                list(BEFORE_0008.items()),
            )
            await conn.execute(load_migrations("postgres")[7].sql)
            keys = await conn.fetch("SELECT match_key FROM wait_events ORDER BY cond")
            shapes = await conn.fetch("SELECT shape FROM event_source_shapes")
        finally:
            await conn.close()
    finally:
        await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await server.close()
    assert [r["match_key"] for r in keys] == [event_rows.match_key(BEFORE_0008), None]
    assert [r["shape"] for r in shapes] == [event_rows.shape(BEFORE_0008)]
