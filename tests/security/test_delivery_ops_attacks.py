"""Attacks on delivery operations (issue 17): who may list endpoints and recover deliveries,
what a project-bound key sees and touches, and malformed, huge or oversized recover calls.

Every refusal is a 4xx in the one error shape and changes nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gateway.clock import ManualClock
from gateway.config import Settings
from gateway.origins import origin_of
from gateway.routes import endpoints as endpoint_routes
from gateway.services import Services
from tests.conftest import BASE_URL, create, make_key, park, running_gateway
from tests.receiver import Receiver, running_receiver


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[Receiver, Receiver]]:
    async with running_receiver() as mine, running_receiver() as theirs:
        yield mine, theirs


@pytest.fixture
async def gateway(
    settings: Settings, clock: ManualClock, receivers: tuple[Receiver, Receiver]
) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    mine, theirs = receivers
    changed = dataclasses.replace(
        settings,
        callback_allowed_origins=(origin_of(mine.url), origin_of(theirs.url)),
        callback_max_age_seconds=0.1,  # every failed callback dies at once
        endpoint_failure_threshold=1000,
    )
    async with running_gateway(changed, clock) as running:
        yield running


def keyed(app: Starlette, key: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers={"X-N8N-API-KEY": key})


async def dead_callback(client: httpx.AsyncClient, svc: Services, url: str) -> str:
    """An execution of the client's project whose resume callback died; the delivery's id."""
    execution = await create(client, callbackUrl=url)
    await park(client, execution["id"], webhook={})
    await client.post(f"/api/v1/executions/{execution['id']}/resume", json={})
    path = f"/api/v1/executions/{execution['id']}/deliveries"
    for _ in range(200):  # the app's own dispatcher loop may be the one sending it
        await svc.dispatcher.run_due()
        (delivery,) = (await client.get(path)).json()["data"]
        if delivery["status"] != "pending":
            break
        await asyncio.sleep(0.01)
    assert delivery["status"] == "dead"
    found: str = delivery["id"]
    return found


def assert_error(answer: httpx.Response, status: int, *fragments: str) -> None:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert isinstance(body["message"], str)
    for fragment in fragments:
        assert fragment in body["message"], body


SINCE = {"since": "2000-01-01T00:00:00Z"}


async def test_keys_without_the_scope_are_refused(
    gateway: tuple[Starlette, httpx.AsyncClient], receivers: tuple[Receiver, Receiver]
) -> None:
    app, admin = gateway
    svc: Services = app.state.services
    receivers[0].default_status = 503
    await dead_callback(admin, svc, receivers[0].url)
    anonymous = keyed(app, "")
    reader = keyed(app, await make_key(svc, "execution:read"))
    tagger = keyed(app, await make_key(svc, "tag:read"))
    async with anonymous, reader, tagger:
        assert (await anonymous.get("/api/v1/endpoints")).status_code == 401
        assert (await anonymous.post("/api/v1/deliveries/recover", json=SINCE)).status_code == 401
        assert (await tagger.get("/api/v1/endpoints")).status_code == 403
        assert (await reader.get("/api/v1/endpoints")).status_code == 200
        refused = await reader.post("/api/v1/deliveries/recover", json=SINCE)
        assert refused.status_code == 403
    listed = (await admin.get("/api/v1/endpoints")).json()["data"]
    assert [e["counts"]["dead"] for e in listed] == [1]  # nothing was recovered


async def test_a_project_key_sees_and_recovers_only_its_projects_deliveries(
    gateway: tuple[Starlette, httpx.AsyncClient], receivers: tuple[Receiver, Receiver]
) -> None:
    app, _ = gateway
    svc: Services = app.state.services
    mine, theirs = receivers
    mine.default_status = theirs.default_status = 503
    p1 = keyed(app, await make_key(svc, "admin", project="p1"))
    p2 = keyed(app, await make_key(svc, "admin", project="p2"))
    async with p1, p2:
        own = await dead_callback(p1, svc, mine.url)
        other = await dead_callback(p2, svc, theirs.url)
        shared = await dead_callback(p2, svc, mine.url)

        listed = (await p1.get("/api/v1/endpoints")).json()["data"]
        assert [(e["endpoint"], e["counts"]["dead"]) for e in listed] == [(origin_of(mine.url), 1)]

        for body in (SINCE, {**SINCE, "endpoint": origin_of(theirs.url)}):
            answer = await p1.post("/api/v1/deliveries/recover", json=body)
            assert answer.status_code == 202
            assert answer.json()["ids"] == ([own] if "endpoint" not in body else [])
        assert (await svc.store.get_delivery(own)).status.value == "pending"  # type: ignore[union-attr]
        for untouched in (other, shared):
            found = await svc.store.get_delivery(untouched)
            assert found is not None
            assert found.status.value == "dead"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "since"),
        ({"since": "yesterday"}, "since must be an RFC 3339"),
        ({"since": "2026-01-01T00:00:00"}, "UTC offset"),
        ({"since": 17}, "Expected `str`"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "before until"),
        ({"since": "2026-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "before until"),
        ({"since": "2100-01-01T00:00:00Z"}, "before now"),
        ({**SINCE, "status": "delivered"}, "status"),
        ({**SINCE, "status": "pending"}, "status"),
        ({**SINCE, "endpoint": "ftp://engine.example.com"}, "endpoint"),
        ({**SINCE, "endpoint": "https://engine.example.com/hook?x=1"}, "endpoint"),
        ({**SINCE, "endpoint": "https://engine.example.com:99999"}, "endpoint"),
        ({**SINCE, "projectId": "p2"}, "projectId"),
        ({"since": "9999-12-31T23:59:59Z", "until": "0001-01-01T00:00:00+01:00"}, "until must lie"),
    ],
)
async def test_malformed_recover_calls_are_400_naming_the_problem(
    gateway: tuple[Starlette, httpx.AsyncClient],
    receivers: tuple[Receiver, Receiver],
    body: dict[str, Any],
    fragment: str,
) -> None:
    app, admin = gateway
    receivers[0].default_status = 503
    dead = await dead_callback(admin, app.state.services, receivers[0].url)
    assert_error(await admin.post("/api/v1/deliveries/recover", json=body), 400, fragment)
    found = await app.state.services.store.get_delivery(dead)
    assert found.status.value == "dead"


async def test_not_json_and_oversized_recover_calls_are_refused(
    gateway: tuple[Starlette, httpx.AsyncClient],
) -> None:
    _, admin = gateway
    for raw in (b"", b"[", b"[]", b'"since"'):
        answer = await admin.post(
            "/api/v1/deliveries/recover", content=raw, headers={"content-type": "application/json"}
        )
        assert_error(answer, 400)
    huge = b'{"since": "2000-01-01T00:00:00Z", "endpoint": "' + b"a" * 70_000 + b'"}'
    answer = await admin.post("/api/v1/deliveries/recover", content=huge)
    assert_error(answer, 413)


async def test_a_huge_window_recovers_a_bounded_batch_at_a_time_and_never_twice(
    gateway: tuple[Starlette, httpx.AsyncClient],
    receivers: tuple[Receiver, Receiver],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, admin = gateway
    svc: Services = app.state.services
    receivers[0].default_status = 503
    dead = [await dead_callback(admin, svc, receivers[0].url) for _ in range(3)]
    monkeypatch.setattr(endpoint_routes, "MAX_RECOVERED", 2)
    everything = {"since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59Z"}
    first = (await admin.post("/api/v1/deliveries/recover", json=everything)).json()
    assert (first["recovered"], first["more"]) == (2, True)
    second = (await admin.post("/api/v1/deliveries/recover", json=everything)).json()
    assert (second["recovered"], second["more"]) == (1, False)
    assert sorted(first["ids"] + second["ids"]) == sorted(dead)
    third = (await admin.post("/api/v1/deliveries/recover", json=everything)).json()
    assert third == {"recovered": 0, "more": False, "ids": []}


async def test_a_project_key_cannot_redeliver_an_operational_event(
    settings: Settings, clock: ManualClock, receivers: tuple[Receiver, Receiver]
) -> None:
    mine, operator = receivers
    changed = dataclasses.replace(
        settings,
        callback_allowed_origins=(origin_of(mine.url),),
        callback_max_age_seconds=0.1,
        operations_url=operator.url,
    )
    mine.default_status = 503
    async with running_gateway(changed, clock) as (app, admin):
        svc: Services = app.state.services
        bound = keyed(app, await make_key(svc, "admin", project="p1"))
        async with bound:
            await dead_callback(bound, svc, mine.url)
            await operator.wait_for(1)
            told = operator.received[0].headers["webhook-id"]
            assert (await bound.post(f"/api/v1/deliveries/{told}/redeliver")).status_code == 404
            assert (await admin.post(f"/api/v1/deliveries/{told}/redeliver")).status_code in {
                202,
                409,
            }
