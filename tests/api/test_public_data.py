"""``includeData``: what an execution's data shows, credential headers, redaction, size limit."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.clock import ManualClock
from gateway.config import Settings
from gateway.services import Services
from tests.conftest import BASE_URL, create, fire_timers, get, make_key, park

MASK = "**redacted**"
CREDENTIAL_HEADERS = {
    "Authorization": "Bearer abc",
    "Cookie": "sid=1",
    "Set-Cookie": "sid=2",
    "Proxy-Authorization": "Basic eDp5",
    "X-N8N-API-KEY": "wg_key",
    "X-Api-Key": "k-123",
}


async def key_client(app: Starlette, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=BASE_URL,
        headers={"X-N8N-API-KEY": key},
    )


async def listed_with_data(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/executions", params={"includeData": "true", **params})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["data"]
    return found


async def resumed_with_headers(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, **fields: Any
) -> int:
    """An execution resumed by a call that carried every credential header, then waiting."""
    execution = await create(client, **fields)
    parked = await park(client, execution["id"], webhook={"httpMethod": "POST"})
    response = await anon.post(
        parked["resumeUrl"] + "&page=2",
        json={"card": "4242", "amount": 5, "items": [{"sku": "A"}], "note": None},
        headers={**CREDENTIAL_HEADERS, "X-Trace": "t-1"},
    )
    assert response.status_code == 200, response.text
    await park(client, execution["id"], waitTill="2026-02-01T00:00:00Z")
    eid: int = execution["id"]
    return eid


async def test_include_data_shows_input_waits_with_due_and_actual_times_and_the_result(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, svc: Services, clock: ManualClock
) -> None:
    execution = await create(client, data={"order": 7}, customData={"tenant": "t1"})
    eid = execution["id"]
    await park(client, eid, waitTill="2026-01-01T00:00:05Z")
    clock.advance(7_250)  # the timer fires late, so due and actual differ
    await fire_timers(svc, eid)
    parked = await park(client, eid, webhook={"httpMethod": "POST", "suffix": "ok"})
    clock.advance(1_000)
    assert (await anon.post(parked["resumeUrl"], json={"approved": True})).status_code == 200
    finished = await client.post(
        f"/api/v1/executions/{eid}/finish", json={"status": "success", "data": {"total": 3}}
    )
    assert finished.status_code == 200
    bare = await get(client, eid)
    assert "data" not in bare
    shown = await get(client, eid, includeData="true")
    assert shown["customData"] == {"tenant": "t1"}
    data = shown["data"]
    assert (data["input"], data["result"], data["error"]) == ({"order": 7}, {"total": 3}, None)
    timer, hook = data["waits"]
    assert (timer["seq"], timer["waitTill"], timer["resumedAt"], timer["resumedBy"]) == (
        1,
        "2026-01-01T00:00:05.000Z",
        "2026-01-01T00:00:07.250Z",
        "timeout",
    )
    assert (hook["seq"], hook["waitTill"], hook["resumedAt"], hook["resumedBy"]) == (
        2,
        "3000-01-01T00:00:00.000Z",
        "2026-01-01T00:00:08.250Z",
        "webhook",
    )
    assert hook["webhook"] == {"httpMethod": ["POST"], "suffix": "ok"}
    assert hook["payload"]["body"] == {"approved": True}
    assert "redactionInfo" not in data
    (listed,) = await listed_with_data(client)
    assert listed["data"] == data
    plain = (await client.get("/api/v1/executions")).json()["data"][0]
    assert "data" not in plain


async def test_an_error_shows_in_data(client: httpx.AsyncClient) -> None:
    execution = await create(client)
    error = {"message": "card declined", "node": "Charge"}
    await client.post(
        f"/api/v1/executions/{execution['id']}/finish", json={"status": "error", "error": error}
    )
    data = (await get(client, execution["id"], includeData="true"))["data"]
    assert (data["result"], data["error"], data["waits"]) == (None, error, [])


async def test_credential_headers_are_always_masked_unless_revealed(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    eid = await resumed_with_headers(client, anon)
    for shown in [await get(client, eid, includeData="true"), *await listed_with_data(client)]:
        headers = shown["data"]["waits"][0]["payload"]["headers"]
        for name in CREDENTIAL_HEADERS:
            assert headers[name.lower()] == MASK, name
        assert headers["x-trace"] == "t-1"
        assert shown["data"]["waits"][0]["payload"]["body"]["card"] == "4242"
    revealed = await get(client, eid, includeData="true", redactExecutionData="false")
    headers = revealed["data"]["waits"][0]["payload"]["headers"]
    assert {name: headers[name.lower()] for name in CREDENTIAL_HEADERS} == CREDENTIAL_HEADERS
    assert "redactionInfo" not in revealed["data"]


async def test_the_engine_api_masks_credential_headers_too(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    execution = await create(client)
    parked = await park(client, execution["id"], webhook={"httpMethod": "POST"})
    await anon.post(parked["resumeUrl"], json={}, headers={"Authorization": "Bearer abc"})
    finished = await client.post(
        f"/api/v1/executions/{execution['id']}/finish", json={"status": "success"}
    )
    headers = finished.json()["data"]["waits"][0]["payload"]["headers"]
    assert headers["authorization"] == MASK


async def test_redact_execution_data_masks_every_value_and_says_so(
    app: Starlette, svc: Services, client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    eid = await resumed_with_headers(client, anon, data={"card": "4242", "n": [1, 2]})
    redacted = await get(client, eid, includeData="true", redactExecutionData="true")
    data = redacted["data"]
    payload = data["waits"][0]["payload"]
    assert payload["body"] == {
        "card": MASK,
        "amount": MASK,
        "items": [{"sku": MASK}],
        "note": None,
    }
    assert payload["query"] == {"page": MASK}
    assert payload["headers"]["x-trace"] == MASK
    assert data["input"] == {"card": MASK, "n": [MASK, MASK]}
    assert data["waits"][0]["resumedBy"] == "webhook"  # what happened stays readable
    assert data["waits"][1]["waitTill"] == "2026-02-01T00:00:00.000Z"
    info = data["redactionInfo"]
    assert (info["isRedacted"], info["canReveal"]) == (True, True)
    assert isinstance(info["reason"], str)
    assert info["reason"]
    (in_list,) = await listed_with_data(client, redactExecutionData="true")
    assert in_list["data"] == data
    reader = await make_key(svc, "execution:read", "execution:list")
    async with await key_client(app, reader) as limited:
        seen = await get(limited, eid, includeData="true", redactExecutionData="true")
        assert seen["data"]["redactionInfo"]["canReveal"] is False


async def test_revealing_needs_the_reveal_scope(
    app: Starlette, svc: Services, client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    eid = await resumed_with_headers(client, anon)
    reader = await make_key(svc, "execution:read", "execution:list")
    revealer = await make_key(svc, "execution:read", "execution:list", "execution:reveal")
    reveal = {"includeData": "true", "redactExecutionData": "false"}
    async with await key_client(app, reader) as limited:
        for path in [f"/api/v1/executions/{eid}", "/api/v1/executions"]:
            refused = await limited.get(path, params=reveal)
            assert (refused.status_code, refused.json()) == (
                403,
                {"message": "Forbidden", "code": 403},
            )
        masked = await get(limited, eid, includeData="true")
        assert masked["data"]["waits"][0]["payload"]["headers"]["authorization"] == MASK
    async with await key_client(app, revealer) as allowed:
        shown = await get(allowed, eid, **reveal)
        assert shown["data"]["waits"][0]["payload"]["headers"]["authorization"] == "Bearer abc"
    for name in ["redactExecutionData", "ignoreDataSizeLimit", "includeData"]:
        bad = await client.get(f"/api/v1/executions/{eid}", params={name: "perhaps"})
        assert bad.status_code == 400
        assert bad.json()["message"] == f"{name} must be true or false; got 'perhaps'"


@pytest.fixture
async def small_display(
    settings: Settings, clock: ManualClock
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    """A gateway that shows at most 1000 bytes of an execution's data."""
    application = create_app(dataclasses.replace(settings, max_display_bytes=1000), clock=clock)
    async with application.router.lifespan_context(application):
        services: Services = application.state.services
        key = await make_key(services)
        async with await key_client(application, key) as http:
            yield http, services


async def test_data_over_the_display_limit_is_left_out_unless_asked(
    small_display: tuple[httpx.AsyncClient, Services],
) -> None:
    client, _ = small_display
    big = await create(client, data={"blob": "x" * 1200}, customData={"size": "big"})
    small = await create(client, data={"blob": "x" * 100})
    for execution in (big, small):
        await client.post(
            f"/api/v1/executions/{execution['id']}/finish", json={"status": "success"}
        )
    shown = await get(client, big["id"], includeData="true")
    assert shown["dataTooLargeToDisplay"] is True
    assert "data" not in shown
    assert shown["customData"] == {"size": "big"}
    assert shown["status"] == "success"
    listed = {e["id"]: e for e in await listed_with_data(client)}
    assert listed[big["id"]].get("dataTooLargeToDisplay") is True
    assert "data" not in listed[big["id"]]
    assert listed[small["id"]]["data"]["input"] == {"blob": "x" * 100}
    assert "dataTooLargeToDisplay" not in listed[small["id"]]
    whole = await get(client, big["id"], includeData="true", ignoreDataSizeLimit="true")
    assert whole["data"]["input"] == {"blob": "x" * 1200}
    assert "dataTooLargeToDisplay" not in whole
    every = await listed_with_data(client, ignoreDataSizeLimit="true")
    assert all("data" in e for e in every)
    without = await get(client, big["id"])
    assert "dataTooLargeToDisplay" not in without  # only data that was asked for is measured


async def test_the_default_display_limit_shows_ordinary_data(client: httpx.AsyncClient) -> None:
    execution = await create(client, data={"blob": "x" * 50_000})
    shown = await get(client, execution["id"], includeData="true")
    assert shown["data"]["input"] == {"blob": "x" * 50_000}


async def test_the_header_a_waits_own_caller_check_reads_is_masked(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    execution = await create(client)
    auth = {"type": "header", "headerName": "X-Partner-Key", "headerValue": "k-1"}
    webhook = {"httpMethod": "POST", "authentication": auth}
    parked = await park(client, execution["id"], webhook=webhook)
    called = await anon.post(
        parked["resumeUrl"], json={}, headers={"X-Partner-Key": "k-1", "X-Other": "o"}
    )
    assert called.status_code == 200, called.text
    await park(client, execution["id"], webhook={"httpMethod": "POST"})
    headers = (await get(client, execution["id"], includeData="true"))["data"]["waits"][0][
        "payload"
    ]["headers"]
    assert (headers["x-partner-key"], headers["x-other"]) == (MASK, "o")
    revealed = await get(client, execution["id"], includeData="true", redactExecutionData="false")
    assert revealed["data"]["waits"][0]["payload"]["headers"]["x-partner-key"] == "k-1"


async def test_deeply_nested_data_is_redacted_without_exhausting_the_stack(
    client: httpx.AsyncClient,
) -> None:
    depth = 450  # 900 levels: near what the JSON decoder accepts
    raw = '{"workflowId": "w", "data": ' + '{"a": [' * depth + '"leaf"' + "]}" * depth + "}"
    response = await client.post(
        "/api/v1/executions", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 201, response.text[:200]
    shown = await get(client, response.json()["id"], includeData="true", redactExecutionData="true")
    value: Any = shown["data"]["input"]
    for _ in range(depth):
        (value,) = value["a"]
    assert value == MASK
