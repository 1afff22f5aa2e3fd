"""PostgreSQL-only behaviour: replicas waking each other, lost connections, the clock."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from gateway.clock import ManualClock
from gateway.config import Settings
from gateway.domain import NewExecution, parse_instant
from persistence import open_store
from persistence.base import Store
from tests.conftest import running_gateway

NOW = 1_800_000_000_000


@pytest.fixture
def pg_settings(settings: Settings) -> Settings:
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL-only behaviour")
    return settings


@pytest.fixture
async def other_replica(pg_settings: Settings) -> AsyncIterator[Store]:
    replica = open_store(pg_settings.database_url)
    await replica.open()
    await replica.migrate()
    yield replica
    await replica.close()


async def _eventually(check: object, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("never happened")


async def _terminate_connections(url: str, *, listeners_only: bool = False) -> int:
    """Kill this database's other connections, as a database restart would."""
    database = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(url)
    try:
        only = " AND query ILIKE 'LISTEN%'" if listeners_only else ""
        killed = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = $1 AND pid <> pg_backend_pid(){only}",
            database,
        )
        return len(killed)
    finally:
        await conn.close()


async def test_replicas_wake_each_other_and_the_listener_reconnects(
    store: Store, other_replica: Store, pg_settings: Settings
) -> None:
    heard: list[int] = []
    outbox: list[bool] = []
    other_replica.on_deadline(heard.append)
    other_replica.on_outbox(lambda: outbox.append(True))
    await asyncio.sleep(0.2)  # the listener connects
    eid = (await store.create_execution(NewExecution("wf"), NOW)).id
    await store.park(eid, NOW + 5000, None, NOW)
    await _eventually(lambda: NOW + 5000 in heard)

    await _terminate_connections(pg_settings.database_url, listeners_only=True)
    await asyncio.sleep(1.5)  # the listener notices and reconnects
    second = (await store.create_execution(NewExecution("wf"), NOW)).id
    await store.park(second, NOW + 7000, None, NOW)
    await _eventually(lambda: NOW + 7000 in heard)


async def test_lost_connections_answer_503_then_recover(
    pg_settings: Settings, clock: ManualClock
) -> None:
    async with running_gateway(pg_settings, clock) as (_app, client):
        before = await client.post("/api/v1/executions", json={"workflowId": "w"})
        assert before.status_code == 201
        assert await _terminate_connections(pg_settings.database_url) > 0
        codes = []
        for _ in range(10):
            response = await client.get(f"/api/v1/executions/{before.json()['id']}")
            codes.append(response.status_code)
            if response.status_code == 503:
                assert "database unavailable" in response.json()["message"]
            if response.status_code == 200:
                break
        assert 500 not in codes
        assert codes[-1] == 200  # recovered by itself, nothing acknowledged lost
        assert set(codes) <= {200, 503}


async def test_a_replica_with_a_wrong_clock_follows_the_database(pg_settings: Settings) -> None:
    skewed = ManualClock(start_ms=int(time.time() * 1000) - 3_600_000)  # an hour behind
    settings = dataclasses.replace(pg_settings, align_clock_to_database=True)
    async with running_gateway(settings, skewed) as (app, client):
        created = (await client.post("/api/v1/executions", json={"workflowId": "w"})).json()
    started = app.state.services.clock.now_ms()
    assert abs(started - time.time() * 1000) < 2000
    assert abs(parse_instant(created["startedAt"], "startedAt") - time.time() * 1000) < 2000
