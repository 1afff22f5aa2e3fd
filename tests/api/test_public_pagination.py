"""Cursor pagination of ``GET /executions``: limits, cursors, and pages while rows arrive."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from gateway.domain import NewExecution
from gateway.services import Services
from tests.conftest import create, park

INVALID_CURSOR = {"message": "An invalid cursor was provided", "code": 400}
BAD_LIMIT = {"message": "limit must be a whole number from 1 to 250", "code": 400}


def cursor_of(value: Any) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


async def page(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    response = await client.get("/api/v1/executions", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def running(svc: Services, count: int, **fields: Any) -> list[int]:
    """``count`` running executions straight into the store (fast), oldest first."""
    made = []
    for _ in range(count):
        new = NewExecution(workflow_id=fields.get("workflow_id", "wf-1"))
        made.append((await svc.store.create_execution(new, svc.clock.now_ms())).id)
    return made


async def test_limit_defaults_to_100_and_tops_out_at_250(
    client: httpx.AsyncClient, svc: Services
) -> None:
    ids = await running(svc, 251)
    first = await page(client, status="running")
    assert [e["id"] for e in first["data"]] == sorted(ids, reverse=True)[:100]
    cursor = json.loads(base64.b64decode(first["nextCursor"]))
    assert cursor == {"lastId": first["data"][-1]["id"], "limit": 100}
    widest = await page(client, status="running", limit="250")
    assert len(widest["data"]) == 250
    rest = await page(client, status="running", cursor=widest["nextCursor"])
    assert [e["id"] for e in rest["data"]] == [min(ids)]
    assert rest["nextCursor"] is None
    exact = await page(
        client, status="running", limit="1", cursor=cursor_of({"lastId": 3, "limit": 2})
    )
    assert [e["id"] for e in exact["data"]] == [2, 1]  # the cursor carries its own limit
    assert exact["nextCursor"] is None


@pytest.mark.parametrize("limit", ["251", "0", "-1", "1.5", "ten", "", "1e2", "²"])
async def test_a_bad_limit_is_400(client: httpx.AsyncClient, limit: str) -> None:
    response = await client.get("/api/v1/executions", params={"limit": limit})
    assert (response.status_code, response.json()) == (400, BAD_LIMIT)


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64!",
        base64.b64encode(b"\xff\xfe").decode(),
        cursor_of([1, 2]),
        cursor_of("lastId"),
        cursor_of({"limit": 5}),
        cursor_of({"lastId": 5}),
        cursor_of({"lastId": "5", "limit": 5}),
        cursor_of({"lastId": True, "limit": 5}),
        cursor_of({"lastId": 5, "limit": 0}),
        cursor_of({"lastId": 5, "limit": 251}),
        cursor_of({"lastId": 5, "limit": 2.5}),
        cursor_of({"lastId": 5, "limit": True}),
    ],
)
async def test_an_invalid_cursor_is_400(client: httpx.AsyncClient, cursor: str) -> None:
    response = await client.get("/api/v1/executions", params={"cursor": cursor})
    assert (response.status_code, response.json()) == (400, INVALID_CURSOR)


async def test_pages_stay_whole_while_matching_rows_are_inserted_between_requests(
    client: httpx.AsyncClient,
) -> None:
    """Keyset pagination: new rows (which match the filter) never shift later pages."""
    existing = []
    for n in range(17):
        execution = await create(client, customData={"batch": "a" if n % 3 else "b"})
        await park(client, execution["id"], webhook={})
        existing.append(execution)
    wanted = sorted((e["id"] for e in existing if e["customData"]["batch"] == "a"), reverse=True)
    params = {"customData[batch]": "a", "limit": "3"}
    seen: list[int] = []
    body = await page(client, **params)
    while True:
        seen += [e["id"] for e in body["data"]]
        assert len(body["data"]) <= 3
        for _ in range(2):  # newer matching rows arrive before the next request
            newer = await create(client, customData={"batch": "a"})
            await park(client, newer["id"], webhook={})
        if body["nextCursor"] is None:
            break
        body = await page(client, cursor=body["nextCursor"], **{"customData[batch]": "a"})
    assert seen == wanted  # newest first, no duplicate, no gap
    fresh = await page(client, **params)
    assert fresh["data"][0]["id"] > max(wanted)  # the inserted rows did match the filter


async def test_a_cursor_walk_with_filters_visits_only_matching_rows(
    client: httpx.AsyncClient,
) -> None:
    made = []
    for n in range(9):
        execution = await create(client, workflowId="even" if n % 2 == 0 else "odd")
        await client.post(f"/api/v1/executions/{execution['id']}/finish", json={"status": "error"})
        made.append(execution)
    pages = []
    body = await page(client, workflowId="even", status="error", limit="2")
    while True:
        pages.append([e["id"] for e in body["data"]])
        if body["nextCursor"] is None:
            break
        body = await page(client, workflowId="even", status="error", cursor=body["nextCursor"])
    evens = sorted((e["id"] for e in made if e["workflowId"] == "even"), reverse=True)
    assert pages == [evens[0:2], evens[2:4], evens[4:5]]
