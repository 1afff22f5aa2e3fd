"""Answering the resume caller: lastNode, responseNode, timeouts, other processes, replays."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.clock import ManualClock, SystemClock
from gateway.config import Settings
from gateway.services import Services
from tests.conftest import BASE_URL, create, get, make_key, park


async def held_call(
    client: httpx.AsyncClient, svc: Services, eid: int, url: str, **kwargs: Any
) -> asyncio.Task[httpx.Response]:
    """Call a resume URL in the background and return once the wait has been resumed."""
    call = asyncio.create_task(client.post(url, **kwargs))
    for _ in range(500):
        wait = await svc.store.get_wait(eid, 1)
        if (wait is not None and wait.resumed_at is not None) or call.done():
            return call
        await asyncio.sleep(0.005)
    raise AssertionError("the call never resumed the wait")


async def parked_with(client: httpx.AsyncClient, **webhook: Any) -> dict[str, Any]:
    execution = await create(client)
    return await park(client, execution["id"], webhook={"httpMethod": "POST", **webhook})


@pytest.mark.parametrize(
    ("response_data", "result", "expected"),
    [
        (None, [{"json": {"a": 1}}, {"json": {"a": 2}}], {"a": 1}),
        ("firstEntryJson", {"total": 3}, {"total": 3}),
        ("allEntries", [{"json": {"a": 1}}, {"b": 2}], [{"a": 1}, {"b": 2}]),
    ],
)
async def test_last_node_answers_with_the_finish_data(
    client: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    svc: Services,
    response_data: str | None,
    result: Any,
    expected: Any,
) -> None:
    parked = await parked_with(client, responseMode="lastNode", responseData=response_data)
    call = await held_call(anon, svc, parked["id"], parked["resumeUrl"])
    assert not call.done()
    finish = await client.post(
        f"/api/v1/executions/{parked['id']}/finish", json={"status": "success", "data": result}
    )
    assert finish.status_code == 200
    response = await asyncio.wait_for(call, 5)
    assert response.status_code == 200
    assert response.json() == expected


async def test_last_node_error_and_no_data(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, svc: Services
) -> None:
    failing = await parked_with(client, responseMode="lastNode")
    call = await held_call(anon, svc, failing["id"], failing["resumeUrl"])
    await client.post(f"/api/v1/executions/{failing['id']}/finish", json={"status": "error"})
    response = await asyncio.wait_for(call, 5)
    assert (response.status_code, response.json()) == (
        500,
        {"message": "Error in workflow", "code": 500},
    )

    quiet = await parked_with(client, responseMode="lastNode", responseData="noData")
    call = await held_call(anon, svc, quiet["id"], quiet["resumeUrl"])
    await client.post(f"/api/v1/executions/{quiet['id']}/finish", json={"status": "success"})
    response = await asyncio.wait_for(call, 5)
    assert (response.status_code, response.content) == (200, b"")


async def test_parking_again_answers_with_the_new_wait(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, svc: Services
) -> None:
    parked = await parked_with(client, responseMode="lastNode")
    call = await held_call(anon, svc, parked["id"], parked["resumeUrl"])
    second = await park(client, parked["id"], webhook={"httpMethod": "POST"})
    response = await asyncio.wait_for(call, 5)
    assert response.status_code == 200
    assert response.json() == {
        "id": parked["id"],
        "status": "waiting",
        "waitTill": "3000-01-01T00:00:00.000Z",
        "resumeUrl": second["resumeUrl"],
    }


async def test_response_node_answers_what_the_engine_sends(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, svc: Services
) -> None:
    parked = await parked_with(client, responseMode="responseNode")
    respond_url = f"/api/v1/executions/{parked['id']}/respond"
    early = await client.post(respond_url, json={"body": "too early"})
    assert early.status_code == 409
    call = await held_call(anon, svc, parked["id"], parked["resumeUrl"])
    pdf = base64.b64encode(b"%PDF-1.4").decode()
    sent = await client.post(
        respond_url,
        json={
            "statusCode": 201,
            "headers": {"X-Receipt": "r-1"},
            "body": {"binary": {"data": pdf, "mimeType": "application/pdf"}},
        },
    )
    assert sent.status_code == 200
    response = await asyncio.wait_for(call, 5)
    assert response.status_code == 201
    assert response.content == b"%PDF-1.4"
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["x-receipt"] == "r-1"
    again = await client.post(respond_url, json={"body": "twice"})
    assert again.status_code == 409
    bad = await client.post(respond_url, json={"statusCode": 42})
    assert bad.status_code == 400


async def test_held_caller_times_out_with_504_and_the_execution_goes_on(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, svc: Services, clock: ManualClock
) -> None:
    parked = await parked_with(client, responseMode="lastNode")
    call = await held_call(anon, svc, parked["id"], parked["resumeUrl"])
    await asyncio.sleep(0.02)
    clock.advance(int(svc.settings.response_timeout_seconds * 1000) + 1)
    response = await asyncio.wait_for(call, 5)
    assert response.status_code == 504
    assert "did not answer within 30 s" in response.json()["message"]
    assert (await get(client, parked["id"]))["status"] == "running"
    finish = await client.post(
        f"/api/v1/executions/{parked['id']}/finish", json={"status": "success"}
    )
    assert finish.status_code == 200


@pytest.fixture
async def two_processes(
    settings: Settings,
) -> AsyncIterator[list[tuple[Starlette, httpx.AsyncClient]]]:
    """Two gateways on one SQLite file, as ``--workers 2`` runs them."""
    shared = dataclasses.replace(settings, response_timeout_seconds=5.0)
    apps = [create_app(shared, clock=SystemClock()) for _ in range(2)]
    async with apps[0].router.lifespan_context(apps[0]), apps[1].router.lifespan_context(apps[1]):
        key = await make_key(apps[0].state.services)
        clients = [
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url=BASE_URL,
                headers={"X-N8N-API-KEY": key},
            )
            for app in apps
        ]
        try:
            yield list(zip(apps, clients, strict=True))
        finally:
            for client in clients:
                await client.aclose()


async def test_finish_on_another_process_reaches_the_held_caller(
    two_processes: list[tuple[Starlette, httpx.AsyncClient]],
) -> None:
    (holder_app, holder), (_, other) = two_processes
    parked = await parked_with(other, responseMode="lastNode")
    call = await held_call(holder, holder_app.state.services, parked["id"], parked["resumeUrl"])
    await other.post(
        f"/api/v1/executions/{parked['id']}/finish",
        json={"status": "success", "data": {"from": "the other process"}},
    )
    response = await asyncio.wait_for(call, 5)
    assert response.json() == {"from": "the other process"}


async def test_idempotency_key_replays_the_first_answer(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    parked = await parked_with(client, responseData={"receipt": "r-9"})
    first = await anon.post(parked["resumeUrl"], headers={"Idempotency-Key": "k-1"})
    assert (first.status_code, first.json()) == (200, {"receipt": "r-9"})
    replay = await anon.post(parked["resumeUrl"], headers={"Idempotency-Key": "k-1"})
    assert (replay.status_code, replay.json()) == (200, {"receipt": "r-9"})
    assert replay.headers["idempotent-replayed"] == "true"
    other_key = await anon.post(parked["resumeUrl"], headers={"Idempotency-Key": "k-2"})
    assert other_key.status_code == 409
    no_key = await anon.post(parked["resumeUrl"])
    assert no_key.status_code == 409
    too_long = await anon.post(parked["resumeUrl"], headers={"Idempotency-Key": "k" * 256})
    assert too_long.status_code == 400
    waits = (await get(client, parked["id"], includeData="true"))["data"]["waits"]
    assert len(waits) == 1


@pytest.mark.parametrize(
    "webhook",
    [
        {"responseMode": "sometimes"},
        {"responseMode": "lastNode", "responseData": "everything"},
    ],
)
async def test_bad_response_mode_settings_are_400(
    client: httpx.AsyncClient, webhook: dict[str, Any]
) -> None:
    execution = await create(client)
    response = await client.post(
        f"/api/v1/executions/{execution['id']}/wait", json={"webhook": webhook}
    )
    assert response.status_code == 400
