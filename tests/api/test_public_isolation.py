"""A key bound to a project sees and touches only that project's executions.

Another project's execution is a 404 with the usual wording (never 403, which would confirm it
exists) on every route, is never listed, and is left exactly as it was. Each attempt targets an
execution in a state where the action would succeed, so a missing check cannot hide behind a 409.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gateway.clock import ManualClock
from gateway.services import Services
from tests.conftest import BASE_URL, create, get, make_key, park


@pytest.fixture
async def bound(app: Starlette, svc: Services) -> AsyncIterator[httpx.AsyncClient]:
    """A client with an admin key bound to project ``p1``."""
    key = await make_key(svc, "admin", project="p1")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL, headers={"X-N8N-API-KEY": key}
    ) as the_client:
        yield the_client


def not_found(eid: int) -> dict[str, str | int]:
    return {"message": f'The execution "{eid}" does not exist.', "code": 404}


async def ids(client: httpx.AsyncClient, **params: str) -> list[int]:
    found = []
    while True:
        response = await client.get("/api/v1/executions", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        found += [e["id"] for e in body["data"]]
        if body["nextCursor"] is None:
            return found
        params = {"cursor": body["nextCursor"]}


async def test_another_projects_executions_are_404_on_every_route_and_left_alone(
    client: httpx.AsyncClient,
    bound: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    svc: Services,
    clock: ManualClock,
) -> None:
    tag = (await client.post("/api/v1/tags", json={"name": "t"})).json()
    running = await create(client, customData={"k": "v"})
    waiting = await create(client, customData={"k": "v"})
    parked = await park(
        client, waiting["id"], waitTill="2026-01-01T00:00:30Z", webhook={"httpMethod": "POST"}
    )
    canceled = await create(client)
    await client.post(f"/api/v1/executions/{canceled['id']}/stop")
    r, w, c = running["id"], waiting["id"], canceled["id"]
    attempts: list[tuple[str, str, Any]] = [
        ("GET", f"/api/v1/executions/{w}", None),
        ("GET", f"/api/v1/executions/{w}?includeData=true", None),
        ("DELETE", f"/api/v1/executions/{w}", None),
        ("POST", f"/api/v1/executions/{w}/stop", None),
        ("POST", f"/api/v1/executions/{c}/retry", None),
        ("GET", f"/api/v1/executions/{w}/tags", None),
        ("PUT", f"/api/v1/executions/{w}/tags", [{"id": tag["id"]}]),
        ("GET", f"/api/v1/executions/{w}/custom-data", None),
        ("GET", f"/api/v1/executions/{w}/custom-data/k", None),
        ("PATCH", f"/api/v1/executions/{w}/custom-data", {"k": "changed"}),
        ("PUT", f"/api/v1/executions/{w}/custom-data", {}),
        ("POST", f"/api/v1/executions/{r}/wait", {"webhook": {}}),
        ("POST", f"/api/v1/executions/{r}/finish", {"status": "success"}),
        ("POST", f"/api/v1/executions/{w}/resume", {"data": 1}),
        ("POST", f"/api/v1/executions/{w}/respond", {"body": "hi"}),
        ("GET", f"/api/v1/executions/{w}/deliveries", None),
    ]
    for method, path, body in attempts:
        response = await bound.request(method, path, json=body)
        eid = int(path.split("/")[4].split("?")[0])
        assert (response.status_code, response.json()) == (404, not_found(eid)), (method, path)
    stopped = await bound.post("/api/v1/executions/stop", json={"status": ["running", "waiting"]})
    assert stopped.json() == {"stopped": 0}
    assert (await get(client, r))["status"] == "running"
    after = await get(client, w, includeData="true")
    assert (after["status"], after["customData"]) == ("waiting", {"k": "v"})
    assert after["data"]["waits"][0]["resumedAt"] is None
    assert (await client.get(f"/api/v1/executions/{w}/tags")).json() == []
    assert (await get(client, c))["retrySuccessId"] is None
    assert [e["id"] for e in (await client.get("/api/v1/executions")).json()["data"]] == [c, w]
    assert (await anon.post(parked["resumeUrl"], json={})).status_code == 200  # still usable


async def test_another_projects_executions_never_show_in_lists(
    client: httpx.AsyncClient, bound: httpx.AsyncClient
) -> None:
    await client.post("/api/v1/tags", json={"name": "t"})
    tag_id = (await client.get("/api/v1/tags")).json()["data"][0]["id"]
    mine: list[int] = []
    theirs: list[int] = []
    for n in range(6):
        owner, into = (bound, mine) if n % 2 else (client, theirs)
        execution = await create(owner, customData={"tenant": "x"})
        await park(owner, execution["id"], waitTill="2026-01-02T00:00:00Z")
        await owner.put(f"/api/v1/executions/{execution['id']}/tags", json=[{"id": tag_id}])
        into.append(execution["id"])
    newest_first = sorted(mine, reverse=True)
    assert all(
        e["projectId"] == "p1" for e in (await bound.get("/api/v1/executions")).json()["data"]
    )
    for params in [
        {},
        {"limit": "1"},
        {"status": "waiting"},
        {"includeData": "true"},
        {"workflowId": "wf-1"},
        {"customData[tenant]": "x"},
        {"tags": "t"},
        {"projectId": "p1"},
        {"waitTillAfter": "2026-01-01T00:00:00Z"},
    ]:
        assert await ids(bound, **params) == newest_first, params
    with_data = (await bound.get("/api/v1/executions", params={"includeData": "true"})).json()
    for listed in with_data["data"]:  # each with its own wait, none of the other project's
        (wait,) = listed["data"]["waits"]
        assert wait["waitTill"] == listed["waitTill"]
    for params in [{"projectId": "p2"}, {"projectId": ""}]:
        expected = [] if params["projectId"] else newest_first
        assert await ids(bound, **params) == expected, params
    assert await ids(client) == sorted(mine + theirs, reverse=True)
    assert await ids(client, projectId="p1") == newest_first


async def test_what_a_project_key_creates_belongs_to_its_project(
    client: httpx.AsyncClient, bound: httpx.AsyncClient
) -> None:
    execution = await create(bound)
    assert execution["projectId"] == "p1"
    await bound.post(f"/api/v1/executions/{execution['id']}/finish", json={"status": "error"})
    retry = (await bound.post(f"/api/v1/executions/{execution['id']}/retry")).json()
    assert (retry["projectId"], retry["retryOf"]) == ("p1", execution["id"])
    assert (await get(bound, retry["id"]))["projectId"] == "p1"
    assert (await get(client, retry["id"]))["projectId"] == "p1"  # an unbound key sees all
    forced = await bound.post("/api/v1/executions", json={"workflowId": "w", "projectId": "p2"})
    assert forced.status_code == 400  # the project comes from the key, not the body
