"""The happy path end to end through the ASGI app."""

from __future__ import annotations

import httpx

from tests.conftest import create, get, park


async def test_create_park_resume_by_url(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    execution = await create(client)
    assert execution["status"] == "running"
    parked = await park(client, execution["id"], webhook={"httpMethod": "POST"})
    assert parked["status"] == "waiting"
    assert parked["waitTill"] == "3000-01-01T00:00:00.000Z"
    assert parked["resumeUrl"] == execution["resumeUrl"]
    response = await anon.post(parked["resumeUrl"], json={"ok": True})
    assert response.status_code == 200, response.text
    assert response.json() == {"message": "Workflow was started"}
    after = await get(client, execution["id"], includeData="true")
    assert after["status"] == "running"
    wait = after["data"]["waits"][0]
    assert wait["resumedBy"] == "webhook"
    assert wait["payload"]["body"] == {"ok": True}
