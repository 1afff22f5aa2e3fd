"""A locked or unreachable database answers 503 with a JSON body, and recovers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from starlette.applications import Starlette

from gateway.clock import ManualClock
from gateway.config import Settings
from persistence.sqlite import SqliteStore
from tests.conftest import running_gateway, sqlite_only


async def test_locked_database_is_503_then_recovers(settings: Settings, clock: ManualClock) -> None:
    sqlite_only(settings)
    path = Path(settings.database_url.removeprefix("sqlite:///"))
    store = SqliteStore(path, busy_timeout_ms=50)
    async with running_gateway(settings, clock, store=store) as (_app, client):
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            response = await client.post("/api/v1/executions", json={"workflowId": "w"})
            assert response.status_code == 503
            assert "database unavailable" in response.json()["message"]
            assert response.headers["retry-after"] == "1"
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        listed = await client.get("/api/v1/executions", params={"status": "running"})
        assert listed.json()["data"] == []  # the refused create left nothing behind
        response = await client.post("/api/v1/executions", json={"workflowId": "w"})
        assert response.status_code == 201


async def _writer_pragma(app: Starlette, pragma: str) -> None:
    store = app.state.services.store
    writer = store.db._writer
    await writer.execute(pragma)


@pytest.mark.parametrize(
    ("break_it", "mend_it"),
    [
        ("PRAGMA query_only = ON", "PRAGMA query_only = OFF"),  # a read-only database
        ("PRAGMA max_page_count = 1", "PRAGMA max_page_count = 1073741823"),  # a full disk
    ],
)
async def test_read_only_or_full_database_is_503_then_recovers(
    settings: Settings, clock: ManualClock, break_it: str, mend_it: str
) -> None:
    sqlite_only(settings)
    async with running_gateway(settings, clock) as (app, client):
        await _writer_pragma(app, break_it)
        big = {"workflowId": "w", "data": "x" * 40_000}  # needs new pages
        refused = await client.post("/api/v1/executions", json=big)
        assert refused.status_code == 503, refused.text
        assert "database unavailable" in refused.json()["message"]
        await _writer_pragma(app, mend_it)
        assert (
            await client.post("/api/v1/executions", json={"workflowId": "w"})
        ).status_code == 201
