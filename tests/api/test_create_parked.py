"""``POST /api/v1/executions`` with ``wait``: created and parked in one write.

The attacks first: who may call it, and what a bad or refused wait leaves behind (nothing:
the insert rolls back with the park, on both databases). Then what it gives: the same
execution, wait, timer and event match as a create followed by a park.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.clock import ManualClock
from gateway.services import Services
from tests.api.test_events import ORDER, add_source, send, stripe_body
from tests.conftest import BASE_URL, fire_timers, get, make_key

WEBHOOK = {"webhook": {"httpMethod": "POST", "suffix": "approve"}}
HEADER_AUTH = {"type": "header", "headerName": "X-Token", "headerValue": "t" * 32}


async def create_parked(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/executions", json={"workflowId": "wf-1", **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def executions(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Every execution: the list leaves out running ones unless asked for them (as n8n's)."""
    listed: list[dict[str, Any]] = []
    for params in ({}, {"status": "running"}):
        listed += (await client.get("/api/v1/executions", params=params)).json()["data"]
    return listed


@pytest.mark.parametrize(
    ("wait", "fragment"),
    [
        ({}, "needs waitTill, webhook, approval, form, events, or a combination"),
        ({"webhook": {}, "bogus": 1}, "unknown field `bogus` - at `$.wait`"),
        ({"waitTill": "tomorrow"}, "RFC 3339"),
        ({"webhook": {"httpMethod": "BREW"}}, "'BREW' is not one of"),
        ({"webhook": {"suffix": "../etc"}}, "webhook.suffix"),
        ({"webhook": {"responseHeaders": {"X": "a\r\nb"}}}, "responseHeaders"),
        (
            {"approval": {"title": "t"}, "webhook": {"authentication": HEADER_AUTH}},
            "cannot be used with approval or form",
        ),
        ("soon", "Expected `object | null`, got `str` - at `$.wait`"),
    ],
)
async def test_a_bad_wait_is_400_and_creates_nothing(
    client: httpx.AsyncClient, wait: Any, fragment: str
) -> None:
    response = await client.post("/api/v1/executions", json={"workflowId": "wf-1", "wait": wait})
    assert response.status_code == 400, response.text
    assert fragment in response.json()["message"]
    assert await executions(client) == []


@pytest.mark.parametrize(
    ("wait", "fragment"),
    [
        (
            {"events": [{"source": "nowhere", "match": {ORDER: "o-1"}}]},
            "events[0].source: there is no event source 'nowhere'",
        ),
        (
            {"events": [{"source": "stripe", "match": {ORDER: {"customData": "orderId"}}}]},
            "orderId",
        ),
        (
            {"approval": {"title": "Ship?", "approvers": [{"id": "x"}], "channels": ["nope"]}},
            "nope",
        ),
    ],
)
async def test_a_wait_the_store_refuses_rolls_the_execution_back(
    client: httpx.AsyncClient, wait: dict[str, Any], fragment: str
) -> None:
    """Refused inside the write (a source, a customData key, a channel that is not there):
    the insert made in the same transaction is gone too, not left ``running``."""
    await add_source(client)
    response = await client.post("/api/v1/executions", json={"workflowId": "wf-1", "wait": wait})
    assert response.status_code == 400, response.text
    assert fragment in response.json()["message"]
    assert await executions(client) == []


async def test_only_a_writer_key_may_create_parked(app: Any, svc: Services) -> None:
    body = {"workflowId": "wf-1", "wait": WEBHOOK}
    reader = await make_key(svc, "execution:read")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as anon:
        assert (await anon.post("/api/v1/executions", json=body)).status_code == 401
        forged = {"X-N8N-API-KEY": "wg_" + "x" * 40}
        assert (await anon.post("/api/v1/executions", json=body, headers=forged)).status_code == 401
        read_only = {"X-N8N-API-KEY": reader}
        refused = await anon.post("/api/v1/executions", json=body, headers=read_only)
        assert refused.status_code == 403
    assert await svc.store.get_execution(1) is None


async def test_a_project_key_parks_on_its_own_project_sources_only(
    app: Any, svc: Services, client: httpx.AsyncClient
) -> None:
    """An event source of no project is not one a project's execution may wait on."""
    await add_source(client)
    key = await make_key(svc, "execution:write", "execution:read", project="team-a")
    wait = {"events": [{"source": "stripe", "match": {ORDER: "o-1"}}]}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE_URL, headers={"X-N8N-API-KEY": key}
    ) as team:
        refused = await team.post("/api/v1/executions", json={"workflowId": "w", "wait": wait})
        assert refused.status_code == 400, refused.text
        made = await create_parked(team, wait={"webhook": {}})
        assert made["status"] == "waiting"
    assert [e["id"] for e in await executions(client)] == [made["id"]]


async def test_the_oversized_body_is_413_and_creates_nothing(
    client: httpx.AsyncClient, svc: Services
) -> None:
    note = "x" * svc.settings.max_body_bytes
    body = {"workflowId": "wf-1", "wait": {"webhook": {"responseData": note}}}
    assert (await client.post("/api/v1/executions", json=body)).status_code == 413
    assert await executions(client) == []


async def test_created_parked_is_the_execution_a_create_and_park_make(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    made = await create_parked(
        client, customData={"order": "A-1"}, data={"amount": 3}, wait=WEBHOOK
    )
    assert made["status"] == "waiting"
    assert made["customData"] == {"order": "A-1"}
    assert made["waitTill"] == "3000-01-01T00:00:00.000Z"
    assert "warnings" not in made
    url = made["resumeUrl"]
    assert url.startswith(f"{BASE_URL}/webhook-waiting/{made['id']}/approve?signature=")
    [wait] = made["data"]["waits"]
    assert wait["seq"] == 1
    assert wait["webhook"]["suffix"] == "approve"

    resumed = await anon.post(url, json={"ok": True})
    assert resumed.status_code == 200, resumed.text
    after = await get(client, made["id"], includeData="true")
    assert after["status"] == "running"
    assert after["data"]["waits"][0]["resumedBy"] == "webhook"
    assert after["data"]["waits"][0]["payload"]["body"] == {"ok": True}


async def test_its_deadline_wakes_the_timer(
    client: httpx.AsyncClient, svc: Services, clock: ManualClock
) -> None:
    made = await create_parked(client, wait={"waitTill": "2026-01-01T00:00:05Z"})
    assert made["status"] == "waiting"
    assert "resumeUrl" not in made
    clock.advance(5_000)
    await fire_timers(svc, made["id"])
    after = await get(client, made["id"], includeData="true")
    assert after["data"]["waits"][0]["resumedBy"] == "timeout"


async def test_a_past_deadline_is_said(client: httpx.AsyncClient) -> None:
    made = await create_parked(client, wait={"waitTill": "2020-01-01T00:00:00Z"})
    assert made["warnings"] == [
        "waitTill 2020-01-01T00:00:00.000Z is in the past; the wait resumes at once"
    ]


async def test_an_event_kept_before_the_create_resumes_it_at_once(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, clock: ManualClock
) -> None:
    await add_source(client)
    assert (await send(anon, clock, stripe_body("o-7"))).json() == {"matched": 0}
    wait = {"events": [{"source": "stripe", "match": {ORDER: {"customData": "orderId"}}}]}
    made = await create_parked(client, customData={"orderId": "o-7"}, wait=wait)
    assert made["status"] == "running"
    listed = (await client.get("/api/v1/events", params={"status": "matched"})).json()["data"]
    detail = (await client.get(f"/api/v1/events/{listed[0]['id']}")).json()
    assert detail["resumed"] == [{"executionId": made["id"], "seq": 1}]
