"""A locked or unreachable database answers 503 with a JSON body, and recovers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx

from gateway.app import create_app
from gateway.clock import ManualClock
from gateway.config import Settings
from persistence.sqlite import SqliteStore
from tests.conftest import BASE_URL, make_key, sqlite_only


async def test_locked_database_is_503_then_recovers(settings: Settings, clock: ManualClock) -> None:
    sqlite_only(settings)
    path = Path(settings.database_url.removeprefix("sqlite:///"))
    store = SqliteStore(path, busy_timeout_ms=50)
    app = create_app(settings, clock=clock, store=store)
    async with app.router.lifespan_context(app):
        key = await make_key(app.state.services)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url=BASE_URL, headers={"X-N8N-API-KEY": key}
        ) as client:
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
