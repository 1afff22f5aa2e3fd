"""n8n's public executions API: filters, cursor pagination, stop, delete, retry, tags."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gateway.clock import ManualClock
from gateway.services import Services
from tests.conftest import BASE_URL, create, get, make_key, park


def message(response: httpx.Response) -> str:
    return str(response.json()["message"])


async def listed(client: httpx.AsyncClient, **params: str) -> list[int]:
    response = await client.get("/api/v1/executions", params=params)
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()["data"]]


async def test_pagination_walks_every_row_once_while_rows_are_inserted(
    client: httpx.AsyncClient,
) -> None:
    existing = [(await create(client))["id"] for _ in range(23)]
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params = {"status": "running", "limit": "5"}
        if cursor:
            params = {"status": "running", "cursor": cursor}
        body = (await client.get("/api/v1/executions", params=params)).json()
        seen += [e["id"] for e in body["data"]]
        cursor = body["nextCursor"]
        pages += 1
        await create(client)  # a newer row arrives between page requests
        if cursor is None:
            break
    assert seen == sorted(existing, reverse=True)  # newest first, no gap, no duplicate
    assert pages == 5


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"limit": "251"}, "limit must be a whole number from 1 to 250"),
        ({"limit": "0"}, "limit"),
        ({"cursor": "not-base64!"}, "An invalid cursor was provided"),
        ({"cursor": base64.b64encode(b'{"lastId": "x", "limit": 5}').decode()}, "invalid cursor"),
        ({"status": "sleeping"}, "status must be one of"),
        ({"startedAfter": "yesterday"}, "RFC 3339"),
        ({"includeData": "maybe"}, "includeData must be true or false"),
        ({"customData[bad key]": "x"}, "not a valid key"),
    ],
)
async def test_bad_list_parameters_are_400(
    client: httpx.AsyncClient, params: dict[str, str], fragment: str
) -> None:
    response = await client.get("/api/v1/executions", params=params)
    assert response.status_code == 400
    assert fragment in message(response)


async def test_filters(client: httpx.AsyncClient, clock: ManualClock) -> None:
    a = await create(client, workflowId="alpha", customData={"tenant": "t1", "tier": "gold"})
    clock.advance(60_000)
    b = await create(client, workflowId="beta", customData={"tenant": "t1"})
    c = await create(client, workflowId="alpha", customData={"tenant": "t2"})
    await park(client, a["id"], waitTill="2026-01-01T01:00:00Z")
    await park(client, b["id"], waitTill="2026-01-01T03:00:00Z")
    await client.post(f"/api/v1/executions/{c['id']}/finish", json={"status": "error"})
    assert await listed(client) == [c["id"], b["id"], a["id"]]
    assert await listed(client, status="waiting") == [b["id"], a["id"]]
    assert await listed(client, status="error") == [c["id"]]
    assert await listed(client, workflowId="alpha") == [c["id"], a["id"]]
    assert await listed(client, startedAfter="2026-01-01T00:00:30Z") == [c["id"], b["id"]]
    assert await listed(client, startedBefore="2026-01-01T00:00:30Z") == [a["id"]]
    assert await listed(client, waitTillBefore="2026-01-01T02:00:00Z") == [a["id"]]
    assert await listed(client, waitTillAfter="2026-01-01T02:00:00Z") == [b["id"]]
    assert await listed(client, **{"customData[tenant]": "t1"}) == [b["id"], a["id"]]
    both = {"customData[tenant]": "t1", "customData[tier]": "gold"}
    assert await listed(client, **both) == [a["id"]]
    running = await create(client)
    assert running["id"] not in await listed(client)  # running is left out unless asked for
    assert await listed(client, status="running") == [running["id"]]
    page = (await client.get("/api/v1/executions", params={"status": "waiting"})).json()
    assert "data" not in page["data"][0]


async def test_error_filter_includes_crashed(
    client: httpx.AsyncClient, svc: Services, clock: ManualClock
) -> None:
    execution = await create(client)
    await svc.store.finish(
        execution["id"], __import__("gateway.domain").domain.Status.CRASHED, None, None, 0
    )
    assert await listed(client, status="error") == [execution["id"]]
    assert await listed(client, status="crashed") == [execution["id"]]


async def test_stop_answers_and_ends_the_wait_for_good(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, svc: Services, clock: ManualClock
) -> None:
    execution = await create(client)
    parked = await park(
        client, execution["id"], waitTill="2026-01-01T00:00:05Z", webhook={"httpMethod": "POST"}
    )
    stopped = await client.post(f"/api/v1/executions/{execution['id']}/stop")
    assert stopped.status_code == 200
    assert (stopped.json()["status"], stopped.json()["stoppedAt"]) == (
        "canceled",
        "2026-01-01T00:00:00.000Z",
    )
    again = await client.post(f"/api/v1/executions/{execution['id']}/stop")
    assert again.status_code == 409
    assert message(again) == (
        f"Only running or waiting executions can be stopped and {execution['id']} "
        "is currently canceled"
    )
    assert (await anon.post(parked["resumeUrl"])).status_code == 409
    clock.advance(10_000)
    assert await svc.scheduler.run_due() == 0
    assert (await get(client, execution["id"]))["status"] == "canceled"
    assert (await client.post("/api/v1/executions/999/stop")).status_code == 404


async def test_bulk_stop(client: httpx.AsyncClient) -> None:
    running = await create(client, workflowId="w1")
    waiting = await create(client, workflowId="w1")
    await park(client, waiting["id"], webhook={})
    other = await create(client, workflowId="w2")
    empty = await client.post("/api/v1/executions/stop", json={"status": []})
    assert empty.status_code == 400
    wrong = await client.post("/api/v1/executions/stop", json={"status": ["done"]})
    assert wrong.status_code == 400
    stopped = await client.post(
        "/api/v1/executions/stop", json={"status": ["waiting", "running"], "workflowId": "w1"}
    )
    assert stopped.json() == {"stopped": 2}
    assert (await get(client, running["id"]))["status"] == "canceled"
    assert (await get(client, waiting["id"]))["status"] == "canceled"
    assert (await get(client, other["id"]))["status"] == "running"
    queued = await client.post("/api/v1/executions/stop", json={"status": ["queued"]})
    assert queued.json() == {"stopped": 0}


async def test_delete(client: httpx.AsyncClient, anon: httpx.AsyncClient) -> None:
    running = await create(client)
    refused = await client.delete(f"/api/v1/executions/{running['id']}")
    assert (refused.status_code, message(refused)) == (400, "Cannot delete a running execution")
    parked = await park(client, running["id"], webhook={"httpMethod": "POST"})
    deleted = await client.delete(f"/api/v1/executions/{running['id']}")
    assert deleted.status_code == 200
    assert deleted.json()["id"] == running["id"]
    assert (await client.get(f"/api/v1/executions/{running['id']}")).status_code == 404
    assert (await anon.post(parked["resumeUrl"])).status_code == 404
    assert (await client.delete(f"/api/v1/executions/{running['id']}")).status_code == 404


async def test_retry_and_retry_success_id(client: httpx.AsyncClient) -> None:
    failed = await create(client, customData={"order": "9"}, data={"x": 1})
    await client.post(f"/api/v1/executions/{failed['id']}/finish", json={"status": "error"})
    retry = await client.post(
        f"/api/v1/executions/{failed['id']}/retry", json={"loadWorkflow": True}
    )
    assert retry.status_code == 200
    body = retry.json()
    assert (body["mode"], body["retryOf"], body["status"]) == ("retry", failed["id"], "running")
    assert body["customData"] == {"order": "9"}
    assert (await get(client, failed["id"]))["retrySuccessId"] is None
    await client.post(f"/api/v1/executions/{body['id']}/finish", json={"status": "success"})
    assert (await get(client, failed["id"]))["retrySuccessId"] == body["id"]
    succeeded = await client.post(f"/api/v1/executions/{body['id']}/retry")
    assert (succeeded.status_code, message(succeeded)) == (
        409,
        "The execution succeeded, so it cannot be retried.",
    )
    running = await create(client)
    assert (await client.post(f"/api/v1/executions/{running['id']}/retry")).status_code == 409
    bad_body = await client.post(f"/api/v1/executions/{failed['id']}/retry", json={"x": 1})
    assert bad_body.status_code == 400


async def test_tags(client: httpx.AsyncClient) -> None:
    urgent = (await client.post("/api/v1/tags", json={"name": "urgent"})).json()
    assert set(urgent) == {"id", "name", "createdAt", "updatedAt"}
    vip = (await client.post("/api/v1/tags", json={"name": "vip"})).json()
    duplicate = await client.post("/api/v1/tags", json={"name": "urgent"})
    assert duplicate.status_code == 409
    assert (await client.post("/api/v1/tags", json={"name": ""})).status_code == 400
    execution = await create(client)
    await park(client, execution["id"], webhook={})
    url = f"/api/v1/executions/{execution['id']}/tags"
    assert (await client.get(url)).json() == []
    unknown = await client.put(url, json=[{"id": urgent["id"]}, {"id": "nope"}])
    assert unknown.status_code == 404
    assert (await client.get(url)).json() == []
    tagged = await client.put(url, json=[{"id": urgent["id"]}, {"id": vip["id"]}])
    assert [t["name"] for t in tagged.json()] == ["urgent", "vip"]
    assert await listed(client, tags="urgent,vip") == [execution["id"]]
    assert await listed(client, tags="urgent,other") == []
    renamed = await client.put(f"/api/v1/tags/{vip['id']}", json={"name": "very"})
    assert renamed.json()["name"] == "very"
    assert (
        await client.put(f"/api/v1/tags/{vip['id']}", json={"name": "urgent"})
    ).status_code == 409
    assert (await client.delete(f"/api/v1/tags/{urgent['id']}")).status_code == 200
    assert [t["name"] for t in (await client.get(url)).json()] == ["very"]
    assert (await client.get(f"/api/v1/tags/{urgent['id']}")).status_code == 404
    page = (await client.get("/api/v1/tags", params={"limit": "1"})).json()
    assert len(page["data"]) == 1


async def test_a_project_key_sees_only_its_project(app: Starlette, svc: Services) -> None:
    transport = httpx.ASGITransport(app=app)
    admin = await make_key(svc)
    mine = await make_key(svc, "admin", project="p1")
    async with (
        httpx.AsyncClient(
            transport=transport, base_url=BASE_URL, headers={"X-N8N-API-KEY": admin}
        ) as root,
        httpx.AsyncClient(
            transport=transport, base_url=BASE_URL, headers={"X-N8N-API-KEY": mine}
        ) as p1,
    ):
        theirs = await create(root)
        own = await create(p1)
        assert own["projectId"] == "p1"
        await p1.post(f"/api/v1/executions/{own['id']}/finish", json={"status": "error"})
        await root.post(f"/api/v1/executions/{theirs['id']}/finish", json={"status": "error"})
        assert await listed(p1) == [own["id"]]
        assert await listed(p1, projectId="p1") == [own["id"]]
        assert await listed(p1, projectId="other") == []  # filters AND, never widen or leak
        other = theirs["id"]
        attempts: list[tuple[str, str, dict[str, Any] | None]] = [
            ("GET", f"/api/v1/executions/{other}", None),
            ("DELETE", f"/api/v1/executions/{other}", None),
            ("POST", f"/api/v1/executions/{other}/stop", None),
            ("POST", f"/api/v1/executions/{other}/retry", None),
            ("GET", f"/api/v1/executions/{other}/tags", None),
            ("GET", f"/api/v1/executions/{other}/custom-data", None),
            ("PATCH", f"/api/v1/executions/{other}/custom-data", {"k": "v"}),
            ("POST", f"/api/v1/executions/{other}/wait", {"webhook": {}}),
            ("POST", f"/api/v1/executions/{other}/finish", {"status": "success"}),
            ("POST", f"/api/v1/executions/{other}/resume", {}),
            ("GET", f"/api/v1/executions/{other}/deliveries", None),
        ]
        for method, path, body in attempts:
            response = await p1.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.text)
        stopped = await p1.post("/api/v1/executions/stop", json={"status": ["running"]})
        assert stopped.json() == {"stopped": 0}
        assert (await get(root, other))["customData"] == {}


async def test_redaction_and_reveal(
    app: Starlette, svc: Services, client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    execution = await create(client, data={"card": "4242"})
    parked = await park(client, execution["id"], webhook={"httpMethod": "POST"})
    await anon.post(
        parked["resumeUrl"],
        json={"secret": "s3"},
        headers={"Authorization": "Basic dTpw", "Cookie": "sid=1", "X-Trace": "t"},
    )
    plain = await get(client, execution["id"], includeData="true")
    headers = plain["data"]["waits"][0]["payload"]["headers"]
    assert (headers["authorization"], headers["cookie"], headers["x-trace"]) == (
        "**redacted**",
        "**redacted**",
        "t",
    )
    assert plain["data"]["waits"][0]["payload"]["body"] == {"secret": "s3"}
    redacted = await get(client, execution["id"], includeData="true", redactExecutionData="true")
    assert redacted["data"]["waits"][0]["payload"]["body"] == {"secret": "**redacted**"}
    assert redacted["data"]["input"] == {"card": "**redacted**"}
    assert redacted["data"]["redactionInfo"]["isRedacted"] is True
    revealed = await get(client, execution["id"], includeData="true", redactExecutionData="false")
    assert revealed["data"]["waits"][0]["payload"]["headers"]["authorization"] == "Basic dTpw"
    reader = await make_key(svc, "execution:read")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE_URL, headers={"X-N8N-API-KEY": reader}
    ) as limited:
        url = f"/api/v1/executions/{execution['id']}"
        forbidden = await limited.get(
            url, params={"includeData": "true", "redactExecutionData": "false"}
        )
        assert (forbidden.status_code, forbidden.json()) == (
            403,
            {"message": "Forbidden", "code": 403},
        )
        allowed = await limited.get(
            url, params={"includeData": "true", "redactExecutionData": "true"}
        )
        assert allowed.json()["data"]["redactionInfo"]["canReveal"] is False


async def test_data_too_large_to_display(
    app: Starlette, svc: Services, client: httpx.AsyncClient
) -> None:
    execution = await create(client, data={"blob": "x" * 2000})
    limited = dataclasses.replace(
        svc, settings=dataclasses.replace(svc.settings, max_display_bytes=1000)
    )
    app.state.services = limited
    try:
        big = await get(client, execution["id"], includeData="true")
        assert big["dataTooLargeToDisplay"] is True
        assert "data" not in big
        whole = await get(client, execution["id"], includeData="true", ignoreDataSizeLimit="true")
        assert whole["data"]["input"] == {"blob": "x" * 2000}
    finally:
        app.state.services = svc


async def test_a_nul_character_in_a_filter_is_never_a_500(
    client: httpx.AsyncClient, settings: Any
) -> None:
    response = await client.get("/api/v1/executions", params={"workflowId": "a\x00b"})
    if settings.database_url.startswith("sqlite"):
        assert (response.status_code, response.json()["data"]) == (200, [])
    else:  # PostgreSQL cannot hold NUL in text: the value is refused, clearly
        assert response.status_code == 400
        assert "cannot be stored" in response.json()["message"]
