"""Retention in the background and from the CLI; the audit trail of resume attempts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from click.testing import CliRunner

from gateway.cli import main
from gateway.clock import ManualClock
from gateway.config import Settings
from gateway.retention import Pruner, RetentionPolicy, prune
from gateway.services import Services
from gateway.supervisor import Supervisor
from tests.conftest import create, park, sqlite_only


async def test_background_pruner_deletes_old_finished_executions_only(
    client: httpx.AsyncClient, svc: Services, clock: ManualClock
) -> None:
    done = await create(client)
    await client.post(f"/api/v1/executions/{done['id']}/finish", json={"status": "success"})
    waiting = await create(client)
    await park(client, waiting["id"], webhook={})
    clock.advance(337 * 3600 * 1000)  # past the 336 h default (this also wakes the app's pruner)
    await prune(svc.store, svc.clock, RetentionPolicy(batch=1))
    assert (await client.get(f"/api/v1/executions/{done['id']}")).status_code == 404
    assert (await client.get(f"/api/v1/executions/{waiting['id']}")).status_code == 200


async def test_pruner_loop_prunes_in_the_background(
    client: httpx.AsyncClient, svc: Services, clock: ManualClock
) -> None:
    done = await create(client)
    await client.post(f"/api/v1/executions/{done['id']}/finish", json={"status": "error"})
    clock.advance(2000)
    pruner = Pruner(svc.store, svc.clock, RetentionPolicy(max_age_ms=1000, interval_ms=60_000))
    supervisor = Supervisor(svc.clock, [pruner])
    supervisor.start()
    try:
        for _ in range(200):
            if await svc.store.get_execution(done["id"]) is None:
                break
            await asyncio.sleep(0.01)
        assert await svc.store.get_execution(done["id"]) is None
    finally:
        await asyncio.wait_for(supervisor.stop(2), 2)


def test_cli_prune(settings: Settings, tmp_path: Path) -> None:
    sqlite_only(settings)
    env = {"WAITGATE_DATABASE_URL": settings.database_url, "WAITGATE_RETENTION_MAX_COUNT": "1"}
    result = CliRunner().invoke(main, ["prune"], env=env)
    assert result.exit_code == 0, result.output
    assert "deleted 0 finished execution(s)" in result.output


async def test_every_resume_attempt_is_audited(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    execution = await create(client)
    parked = await park(client, execution["id"], webhook={"httpMethod": "POST"})
    url = parked["resumeUrl"]
    await anon.post(url.replace("signature=", "signature=x"), headers={"user-agent": "prober/1"})
    await anon.get(url)
    await anon.post(url, headers={"user-agent": "partner/2"})
    await anon.post(url)
    trail = (await client.get(f"/api/v1/executions/{execution['id']}/resume-attempts")).json()
    rows = [(a["method"], a["statusCode"], a["outcome"]) for a in trail["data"]]
    assert rows == [
        ("POST", 401, "refused"),
        ("GET", 404, "refused"),
        ("POST", 200, "accepted"),
        ("POST", 409, "refused"),
    ]
    assert trail["data"][0]["userAgent"] == "prober/1"
    assert trail["data"][0]["reason"] == "Invalid token"
    assert trail["data"][2]["reason"] == "resumed"
    assert trail["data"][3]["reason"].endswith("is running already.")
    assert trail["data"][2]["ip"]
