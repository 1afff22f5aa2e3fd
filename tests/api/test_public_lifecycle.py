"""Stop, bulk stop, delete, retry and execution tags: the answers of n8n's public API."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.clock import ManualClock
from gateway.domain import Status
from gateway.services import Services
from tests.conftest import create, get, park


def not_found(eid: int | str) -> dict[str, str | int]:
    return {"message": f'The execution "{eid}" does not exist.', "code": 404}


async def finished(client: httpx.AsyncClient, status: str, **fields: Any) -> dict[str, Any]:
    execution = await create(client, **fields)
    response = await client.post(
        f"/api/v1/executions/{execution['id']}/finish", json={"status": status}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_stopped_wait_never_resumes_by_url_or_timer(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, svc: Services, clock: ManualClock
) -> None:
    execution = await create(client)
    eid = execution["id"]
    parked = await park(
        client, eid, waitTill="2026-01-01T00:01:00Z", webhook={"httpMethod": "POST"}
    )
    clock.advance(10_000)
    stopped = await client.post(f"/api/v1/executions/{eid}/stop")
    assert stopped.status_code == 200
    assert (stopped.json()["status"], stopped.json()["stoppedAt"]) == (
        "canceled",
        "2026-01-01T00:00:10.000Z",
    )
    assert "resumeUrl" not in stopped.json()
    late = await anon.post(parked["resumeUrl"], json={})
    assert (late.status_code, late.json()["message"]) == (
        409,
        f'The execution "{eid}" was canceled.',
    )
    clock.advance(120_000)  # well past waitTill
    assert await svc.scheduler.run_due() == 0
    assert await svc.store.next_deadline() is None
    after = await get(client, eid, includeData="true")
    assert (after["status"], after["stoppedAt"]) == ("canceled", "2026-01-01T00:00:10.000Z")
    assert after["data"]["waits"][0]["resumedAt"] is None


@pytest.mark.parametrize("status", ["success", "error", "canceled", "crashed"])
async def test_only_unfinished_executions_can_be_stopped(
    client: httpx.AsyncClient, svc: Services, status: str
) -> None:
    execution = await create(client)
    eid = execution["id"]
    if status == "canceled":
        assert await svc.store.stop(eid, svc.clock.now_ms())
    else:
        assert await svc.store.finish(eid, Status(status), None, None, svc.clock.now_ms())
    response = await client.post(f"/api/v1/executions/{eid}/stop")
    assert (response.status_code, response.json()) == (
        409,
        {
            "message": f"Only running or waiting executions can be stopped and {eid} "
            f"is currently {status}",
            "code": 409,
        },
    )
    missing = await client.post("/api/v1/executions/424242/stop")
    assert (missing.status_code, missing.json()) == (404, not_found(424242))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"status": []}, "status must list at least one of queued, running, waiting"),
        ({"status": ["success"]}, "status 'success' is not one of queued, running, waiting"),
        ({}, "Invalid request body: Object missing required field `status`"),
        (
            {"status": "running"},
            "Invalid request body: Expected `array`, got `str` - at `$.status`",
        ),
        (
            {"status": ["running"], "startedAfter": "today"},
            "startedAfter must be an RFC 3339 date-time, got 'today'",
        ),
    ],
)
async def test_bulk_stop_rejects_a_bad_body(
    client: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    response = await client.post("/api/v1/executions/stop", json=body)
    assert (response.status_code, response.json()) == (400, {"message": message, "code": 400})


async def test_bulk_stop_cancels_what_matches_and_their_urls_then_answer_409(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, clock: ManualClock
) -> None:
    old = await create(client)
    old_url = (await park(client, old["id"], webhook={"httpMethod": "POST"}))["resumeUrl"]
    clock.advance(60_000)
    new = await create(client)
    new_url = (await park(client, new["id"], webhook={"httpMethod": "POST"}))["resumeUrl"]
    busy = await create(client)
    stopped = await client.post(
        "/api/v1/executions/stop",
        json={"status": ["waiting"], "startedAfter": "2026-01-01T00:00:30Z"},
    )
    assert stopped.json() == {"stopped": 1}
    assert (await anon.post(new_url)).status_code == 409
    assert (await anon.post(old_url)).status_code == 200  # older than startedAfter: untouched
    everything = await client.post(
        "/api/v1/executions/stop", json={"status": ["queued", "running", "waiting"]}
    )
    assert everything.json() == {"stopped": 2}  # the old one resumed (running) and busy
    assert (await get(client, busy["id"]))["status"] == "canceled"
    assert (await get(client, old["id"]))["status"] == "canceled"


async def test_deleting_a_waiting_execution_ends_its_url_and_its_timer(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, svc: Services, clock: ManualClock
) -> None:
    execution = await create(client, customData={"k": "v"})
    eid = execution["id"]
    parked = await park(
        client, eid, waitTill="2026-01-01T00:00:30Z", webhook={"httpMethod": "POST"}
    )
    tag = (await client.post("/api/v1/tags", json={"name": "gone-with-it"})).json()
    await client.put(f"/api/v1/executions/{eid}/tags", json=[{"id": tag["id"]}])
    deleted = await client.delete(f"/api/v1/executions/{eid}")
    assert deleted.status_code == 200
    assert (deleted.json()["id"], deleted.json()["status"]) == (eid, "waiting")
    gone = await anon.post(parked["resumeUrl"])
    assert (gone.status_code, gone.json()["message"]) == (404, not_found(eid)["message"])
    clock.advance(60_000)
    assert await svc.scheduler.run_due() == 0
    for method, path in [
        ("GET", f"/api/v1/executions/{eid}"),
        ("DELETE", f"/api/v1/executions/{eid}"),
        ("GET", f"/api/v1/executions/{eid}/tags"),
        ("POST", f"/api/v1/executions/{eid}/retry"),
    ]:
        response = await client.request(method, path)
        assert (response.status_code, response.json()) == (404, not_found(eid)), path
    assert (await client.get(f"/api/v1/tags/{tag['id']}")).status_code == 200  # the tag stays


async def test_a_running_execution_cannot_be_deleted_but_a_finished_one_can(
    client: httpx.AsyncClient,
) -> None:
    execution = await create(client)
    refused = await client.delete(f"/api/v1/executions/{execution['id']}")
    assert (refused.status_code, refused.json()) == (
        400,
        {"message": "Cannot delete a running execution", "code": 400},
    )
    assert (await get(client, execution["id"]))["status"] == "running"
    done = await finished(client, "success")
    assert (await client.delete(f"/api/v1/executions/{done['id']}")).status_code == 200


@pytest.mark.parametrize("status", ["error", "crashed", "canceled"])
async def test_failed_crashed_and_canceled_executions_can_be_retried(
    client: httpx.AsyncClient, svc: Services, status: str
) -> None:
    execution = await create(client, workflowId="wf-r", data={"n": 1}, customData={"a": "b"})
    eid = execution["id"]
    if status == "canceled":
        assert await svc.store.stop(eid, svc.clock.now_ms())
    else:
        assert await svc.store.finish(eid, Status(status), None, None, svc.clock.now_ms())
    response = await client.post(f"/api/v1/executions/{eid}/retry")
    assert response.status_code == 200, response.text
    retry = response.json()
    assert retry["id"] > eid
    assert (retry["mode"], retry["retryOf"], retry["status"], retry["workflowId"]) == (
        "retry",
        eid,
        "running",
        "wf-r",
    )
    assert (await get(client, retry["id"], includeData="true"))["data"]["input"] == {"n": 1}


async def test_retry_success_id_points_at_the_retry_that_succeeded(
    client: httpx.AsyncClient,
) -> None:
    original = await finished(client, "error")
    oid = original["id"]
    first = (await client.post(f"/api/v1/executions/{oid}/retry")).json()
    await client.post(f"/api/v1/executions/{first['id']}/finish", json={"status": "error"})
    assert (await get(client, oid))["retrySuccessId"] is None  # a failed retry marks nothing
    second = (await client.post(f"/api/v1/executions/{oid}/retry")).json()
    assert second["retryOf"] == oid
    await client.post(f"/api/v1/executions/{second['id']}/finish", json={"status": "success"})
    assert (await get(client, oid))["retrySuccessId"] == second["id"]
    assert (await get(client, first["id"]))["retrySuccessId"] is None
    again = await client.post(f"/api/v1/executions/{second['id']}/retry")
    assert (again.status_code, again.json()) == (
        409,
        {"message": "The execution succeeded, so it cannot be retried.", "code": 409},
    )


@pytest.mark.parametrize("state", ["running", "waiting"])
async def test_unfinished_executions_cannot_be_retried(
    client: httpx.AsyncClient, state: str
) -> None:
    execution = await create(client)
    if state == "waiting":
        await park(client, execution["id"], webhook={})
    response = await client.post(f"/api/v1/executions/{execution['id']}/retry")
    assert (response.status_code, response.json()) == (
        409,
        {
            "message": "Only executions that failed, crashed or were canceled can be retried; "
            f"{execution['id']} is currently {state}",
            "code": 409,
        },
    )
    missing = await client.post("/api/v1/executions/424242/retry")
    assert (missing.status_code, missing.json()) == (404, not_found(424242))


async def test_put_replaces_an_executions_tags_all_or_nothing(client: httpx.AsyncClient) -> None:
    a, b, c = [(await client.post("/api/v1/tags", json={"name": name})).json() for name in "abc"]
    execution = await finished(client, "success")
    url = f"/api/v1/executions/{execution['id']}/tags"
    first = await client.put(url, json=[{"id": a["id"]}, {"id": b["id"]}, {"id": a["id"]}])
    assert [t["name"] for t in first.json()] == ["a", "b"]
    replaced = await client.put(url, json=[{"id": c["id"]}])
    assert [t["name"] for t in replaced.json()] == ["c"]
    unknown = await client.put(url, json=[{"id": a["id"]}, {"id": "no-such-tag"}])
    assert (unknown.status_code, unknown.json()) == (
        404,
        {"message": "One or more of the tags were not found", "code": 404},
    )
    assert [t["name"] for t in (await client.get(url)).json()] == ["c"]  # unchanged
    for bad in [{"id": a["id"]}, [{"name": "a"}], [{"id": 5}], [{"id": a["id"], "x": 1}]]:
        response = await client.put(url, json=bad)
        assert response.status_code == 400, bad
        assert response.json()["message"].startswith("Invalid request body")
    cleared = await client.put(url, json=[])
    assert (cleared.status_code, cleared.json()) == (200, [])
    assert set(a) == {"id", "name", "createdAt", "updatedAt"}


async def test_tag_names_are_unique_and_checked(client: httpx.AsyncClient) -> None:
    tag = (await client.post("/api/v1/tags", json={"name": "  urgent "})).json()
    assert tag["name"] == "urgent"
    twice = await client.post("/api/v1/tags", json={"name": "urgent"})
    assert (twice.status_code, twice.json()) == (
        409,
        {"message": "Tag already exists", "code": 409},
    )
    other = (await client.post("/api/v1/tags", json={"name": "later"})).json()
    clash = await client.put(f"/api/v1/tags/{other['id']}", json={"name": "urgent"})
    assert (clash.status_code, clash.json()) == (
        409,
        {"message": "Tag already exists", "code": 409},
    )
    same = await client.put(f"/api/v1/tags/{tag['id']}", json={"name": "urgent"})
    assert same.status_code == 200  # keeping its own name is no clash
    for name in ["", "   ", "x" * 25]:
        response = await client.post("/api/v1/tags", json={"name": name})
        assert (response.status_code, response.json()) == (
            400,
            {"message": "name must be 1 to 24 characters", "code": 400},
        )
    for method in ["GET", "PUT", "DELETE"]:
        body = {"name": "n"} if method == "PUT" else None
        missing = await client.request(method, "/api/v1/tags/nope", json=body)
        assert (missing.status_code, missing.json()) == (404, {"message": "Not Found", "code": 404})


async def test_tags_list_pages_by_cursor(client: httpx.AsyncClient) -> None:
    names = {f"t{n}" for n in range(5)}
    for name in names:
        await client.post("/api/v1/tags", json={"name": name})
    seen: list[str] = []
    params = {"limit": "2"}
    while True:
        body = (await client.get("/api/v1/tags", params=params)).json()
        assert len(body["data"]) <= 2
        seen += [t["name"] for t in body["data"]]
        if body["nextCursor"] is None:
            break
        params = {"limit": "2", "cursor": body["nextCursor"]}
    assert sorted(seen) == sorted(names)
    assert len(seen) == len(names)
    for limit in ["0", "251", "x"]:
        bad = await client.get("/api/v1/tags", params={"limit": limit})
        assert bad.status_code == 400
