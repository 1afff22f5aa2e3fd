"""Events over HTTP: sources, the inbound URL (Stripe-signed), internal publish, matching,
fan-out, dedup, lookback, project isolation, refusals, and the bad inputs of issue 13."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import msgspec
import pytest
import stripe

from gateway.clock import ManualClock
from gateway.services import Services
from tests.conftest import BASE_URL, create, fire_timers, get, make_key, park

SECRET = "whsec_" + "s3cr3t" * 6
ORDER = "data.object.metadata.orderId"


def stripe_body(
    order: str, event_id: str = "evt_1", kind: str = "payment_intent.succeeded"
) -> bytes:
    event = {
        "id": event_id,
        "object": "event",
        "type": kind,
        "data": {"object": {"id": "pi_1", "metadata": {"orderId": order}}},
    }
    return msgspec.json.encode(event)


def signed(body: bytes, clock: ManualClock, secret: str = SECRET) -> dict[str, str]:
    header: str = stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=clock.now_ms() // 1000
    )
    return {"Stripe-Signature": header, "Content-Type": "application/json"}


async def send(
    anon: httpx.AsyncClient, clock: ManualClock, body: bytes, source: str = "stripe"
) -> httpx.Response:
    return await anon.post(f"/events/{source}", content=body, headers=signed(body, clock))


async def add_source(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "stripe", "verify": {"type": "stripe", "secret": SECRET}, **fields}
    response = await client.post("/api/v1/event-sources", json=body)
    assert response.status_code == 201, response.text
    found: dict[str, Any] = response.json()
    return found


async def waiting_for(client: httpx.AsyncClient, order: str, **wait: Any) -> int:
    execution = await create(client, customData={"orderId": order})
    events = [
        {
            "source": "stripe",
            "name": "payment_intent.succeeded",
            "match": {ORDER: {"customData": "orderId"}},
        }
    ]
    await park(client, execution["id"], events=events, **wait)
    return int(execution["id"])


async def status_of(client: httpx.AsyncClient, eid: int) -> str:
    found: str = (await get(client, eid))["status"]
    return found


async def test_a_source_shows_its_url_and_never_its_secret(client: httpx.AsyncClient) -> None:
    created = await add_source(client)
    assert created["url"] == f"{BASE_URL}/events/stripe"
    assert created["verify"] == {
        "type": "stripe",
        "secret": "**********",
        "allowedIps": [],
        "toleranceSeconds": 300,
    }
    assert (created["eventIdPath"], created["eventNamePath"]) == ("id", "type")
    assert (created["lookbackSeconds"], created["dedupSeconds"]) == (3600, 86400)
    for response in (
        await client.get("/api/v1/event-sources/stripe"),
        await client.get("/api/v1/event-sources"),
        await client.patch("/api/v1/event-sources/stripe", json={"lookbackSeconds": 0}),
    ):
        assert response.status_code == 200, response.text
        assert SECRET not in response.text
    assert (await client.get("/api/v1/event-sources/stripe")).json()["lookbackSeconds"] == 0
    assert (
        await client.post(
            "/api/v1/event-sources",
            json={"name": "stripe", "verify": {"type": "stripe", "secret": SECRET}},
        )
    ).status_code == 409
    assert (await client.delete("/api/v1/event-sources/stripe")).status_code == 200
    assert (await client.get("/api/v1/event-sources/stripe")).status_code == 404


@pytest.mark.parametrize("name", ["", "a/b", "a.b", "x" * 65, "é", "a b"])
async def test_a_source_name_outside_the_alphabet_is_400(
    client: httpx.AsyncClient, name: str
) -> None:
    response = await client.post(
        "/api/v1/event-sources", json={"name": name, "verify": {"type": "stripe", "secret": SECRET}}
    )
    assert response.status_code == 400, response.text


async def test_a_stripe_signed_event_resumes_the_order_once(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, clock: ManualClock, svc: Services
) -> None:
    await add_source(client)
    eid = await waiting_for(client, "o-1")
    other = await waiting_for(client, "o-2")
    body = stripe_body("o-1")
    response = await send(anon, clock, body)
    assert (response.status_code, response.json()) == (200, {"matched": 1})
    execution = await get(client, eid, includeData="true")
    assert execution["status"] == "running"
    (wait,) = execution["data"]["waits"]
    assert wait["resumedBy"] == "event"
    payload = wait["payload"]
    assert (payload["source"], payload["eventId"], payload["name"]) == (
        "stripe",
        "evt_1",
        "payment_intent.succeeded",
    )
    assert payload["body"]["data"]["object"]["metadata"]["orderId"] == "o-1"
    assert "stripe-signature" in payload["headers"]
    again = await send(anon, clock, body)
    assert (again.status_code, again.json()) == (200, {"matched": 0, "duplicate": True})
    assert await status_of(client, other) == "waiting"


async def test_one_event_resumes_every_matching_wait_once(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, clock: ManualClock
) -> None:
    await add_source(client)
    waits = [await waiting_for(client, "o-1") for _ in range(3)]
    response = await send(anon, clock, stripe_body("o-1"))
    assert response.json() == {"matched": 3}
    assert [await status_of(client, e) for e in waits] == ["running"] * 3
    response = await send(anon, clock, stripe_body("o-1", "evt_2"))
    assert response.json() == {"matched": 0}


async def test_an_event_before_the_park_is_applied_at_park(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, clock: ManualClock
) -> None:
    await add_source(client)
    assert (await send(anon, clock, stripe_body("o-1"))).json() == {"matched": 0}
    execution = await create(client, customData={"orderId": "o-1"})
    events = [{"source": "stripe", "match": {ORDER: {"customData": "orderId"}}}]
    parked = await park(client, execution["id"], events=events)
    assert parked["status"] == "running"
    listed = (await client.get("/api/v1/events", params={"status": "matched"})).json()["data"]
    assert [e["eventId"] for e in listed] == ["evt_1"]
    detail = (await client.get(f"/api/v1/events/{listed[0]['id']}")).json()
    assert detail["resumed"] == [{"executionId": execution["id"], "seq": 1}]


async def test_an_event_past_its_lookback_is_not_applied(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, clock: ManualClock
) -> None:
    await add_source(client, lookbackSeconds=60)
    await send(anon, clock, stripe_body("o-1"))
    clock.advance(60_001)
    eid = await waiting_for(client, "o-1")
    assert await status_of(client, eid) == "waiting"


async def test_refused_signatures_are_not_stored_and_match_nothing(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, clock: ManualClock
) -> None:
    await add_source(client)
    eid = await waiting_for(client, "o-1")
    body = stripe_body("o-1")
    forged = await anon.post(
        "/events/stripe", content=body, headers=signed(body, clock, "whsec_other")
    )
    assert forged.status_code == 403
    assert forged.json()["code"] == 403
    missing = await anon.post("/events/stripe", content=body)
    assert missing.status_code == 401
    assert await status_of(client, eid) == "waiting"
    assert (await client.get("/api/v1/events")).json()["data"] == []
    assert (await client.get("/api/v1/events", params={"status": "refused"})).status_code == 400


async def test_bad_inbound_requests(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, clock: ManualClock, svc: Services
) -> None:
    await add_source(client)
    assert (await send(anon, clock, b"{}", source="nope")).status_code == 404
    assert (await send(anon, clock, b"{}", source="a.b")).status_code == 404
    big = b'{"x": "' + b"a" * svc.settings.max_body_bytes + b'"}'
    assert (await anon.post("/events/stripe", content=big)).status_code == 413
    eid = await waiting_for(client, "o-1")
    for body in (b"not json", b"", b'{"data": 1}', b"[1, 2]", b'"text"'):
        response = await send(anon, clock, body)
        assert (response.status_code, response.json()) == (200, {"matched": 0}), body
    assert await status_of(client, eid) == "waiting"
    kept = (await client.get("/api/v1/events", params={"status": "unmatched"})).json()["data"]
    assert len(kept) == 5


async def test_bad_waits_are_400_naming_the_rule(client: httpx.AsyncClient) -> None:
    await add_source(client)
    execution = await create(client)
    url = f"/api/v1/executions/{execution['id']}/wait"
    cases = {
        "at most 10 events": {"events": [{"source": "stripe"}] * 11},
        "at most 10 keys": {
            "events": [{"source": "stripe", "match": {f"k{i}": "v" for i in range(11)}}]
        },
        "no event source 'nope'": {"events": [{"source": "nope"}]},
        "no key 'orderId'": {
            "events": [{"source": "stripe", "match": {"a": {"customData": "orderId"}}}]
        },
        "events[0].match key": {"events": [{"source": "stripe", "match": {"a..b": "v"}}]},
    }
    for message, body in cases.items():
        response = await client.post(url, json=body)
        assert response.status_code == 400, (message, response.text)
        assert message in response.json()["message"], (message, response.text)
    assert await status_of(client, execution["id"]) == "running"


async def test_publish_matches_dedups_and_looks_back(client: httpx.AsyncClient) -> None:
    await client.post(
        "/api/v1/event-sources",
        json={"name": "orders", "verify": {"type": "none", "allowedIps": ["10.0.0.0/8"]}},
    )
    execution = await create(client)
    await park(
        client,
        execution["id"],
        events=[{"source": "orders", "name": "shipped", "match": {"order.id": "42"}}],
    )
    first = await client.post(
        "/api/v1/events",
        json={"source": "orders", "name": "shipped", "id": "x1", "data": {"order": {"id": 42}}},
    )
    assert first.status_code == 200, first.text
    assert first.json()["matched"] == 1
    again = await client.post(
        "/api/v1/events",
        json={"source": "orders", "name": "shipped", "id": "x1", "data": {"order": {"id": 42}}},
    )
    assert again.json()["duplicate"] is True
    early = await client.post(
        "/api/v1/events", json={"source": "orders", "name": "shipped", "data": {"order": {"id": 7}}}
    )
    assert early.json()["matched"] == 0
    later = await create(client)
    parked = await park(
        client, later["id"], events=[{"source": "orders", "match": {"order.id": "7"}}]
    )
    assert parked["status"] == "running"
    assert (
        await client.post("/api/v1/events", json={"source": "nope", "data": {}})
    ).status_code == 404


async def test_replay_matches_a_kept_event_again(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await client.post(
        "/api/v1/event-sources",
        json={
            "name": "orders",
            "verify": {"type": "none", "allowedIps": ["10.0.0.0/8"]},
            "lookbackSeconds": 0,
        },
    )
    kept = (
        await client.post("/api/v1/events", json={"source": "orders", "data": {"n": "1"}})
    ).json()
    execution = await create(client)
    await park(client, execution["id"], events=[{"source": "orders", "match": {"n": "1"}}])
    assert await status_of(client, execution["id"]) == "waiting"
    replayed = await client.post(f"/api/v1/events/{kept['id']}/replay")
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["resumed"] == [{"executionId": execution["id"], "seq": 1}]
    assert (await client.post("/api/v1/events/999/replay")).status_code == 404


async def test_sources_and_events_are_isolated_by_project(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, svc: Services
) -> None:
    mine = {"X-N8N-API-KEY": await make_key(svc, "admin", project="p1")}
    theirs = {"X-N8N-API-KEY": await make_key(svc, "admin", project="p2")}
    none = {"type": "none", "allowedIps": ["10.0.0.0/8"]}
    assert (
        await anon.post("/api/v1/event-sources", json={"name": "a", "verify": none}, headers=mine)
    ).status_code == 201
    assert (await anon.get("/api/v1/event-sources/a", headers=theirs)).status_code == 404
    assert (
        await anon.patch("/api/v1/event-sources/a", json={"dedupSeconds": 1}, headers=theirs)
    ).status_code == 404
    assert (await anon.delete("/api/v1/event-sources/a", headers=theirs)).status_code == 404
    assert (await anon.get("/api/v1/event-sources", headers=theirs)).json()["data"] == []
    published = await anon.post("/api/v1/events", json={"source": "a", "data": {}}, headers=theirs)
    assert published.status_code == 404
    execution = (
        await anon.post("/api/v1/executions", json={"workflowId": "w"}, headers=theirs)
    ).json()
    refused = await anon.post(
        f"/api/v1/executions/{execution['id']}/wait",
        json={"events": [{"source": "a"}]},
        headers=theirs,
    )
    assert refused.status_code == 400
    event = (
        await anon.post("/api/v1/events", json={"source": "a", "data": {}}, headers=mine)
    ).json()
    assert (await anon.get(f"/api/v1/events/{event['id']}", headers=theirs)).status_code == 404
    assert (await anon.get("/api/v1/events", headers=theirs)).json()["data"] == []
    assert len((await anon.get("/api/v1/events", headers=mine)).json()["data"]) == 1
    assert (
        await anon.post(f"/api/v1/events/{event['id']}/replay", headers=theirs)
    ).status_code == 404


async def test_events_url_call_and_timer_race_for_one_wait(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, clock: ManualClock, svc: Services
) -> None:
    await add_source(client)
    for round_ in range(4):
        execution = await create(client, customData={"orderId": f"o-{round_}"})
        eid = execution["id"]
        events = [{"source": "stripe", "match": {ORDER: {"customData": "orderId"}}}]
        until = "2026-01-01T00:00:01.000Z"
        parked = await park(
            client, eid, events=events, webhook={"httpMethod": "POST"}, waitTill=until
        )
        clock.set(1_767_225_601_000)
        results = await asyncio.gather(
            send(anon, clock, stripe_body(f"o-{round_}", f"a{round_}")),
            send(anon, clock, stripe_body(f"o-{round_}", f"b{round_}")),
            anon.post(parked["resumeUrl"], json={}),
            fire_timers(svc, eid),
        )
        a, b, call = results[0].json(), results[1].json(), results[2]
        resumed = a["matched"] + b["matched"] + int(call.status_code == 200)
        final = await get(client, eid, includeData="true")
        by = final["data"]["waits"][0]["resumedBy"]
        assert resumed == (0 if by == "timeout" else 1), (a, b, call.status_code, by)
        clock.set(1_767_225_600_000)


async def test_the_pruner_forgets_events_past_their_windows(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, clock: ManualClock, svc: Services
) -> None:
    await add_source(client)
    await send(anon, clock, stripe_body("o-1"))
    clock.advance(86_400_001)
    assert await svc.store.prune_events(clock.now_ms(), 100) == 1
    assert (await client.get("/api/v1/events")).json()["data"] == []


async def test_refusals_are_limited_per_address(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, clock: ManualClock, svc: Services
) -> None:
    await add_source(client)
    body = stripe_body("o-1")
    answers = [
        (
            await anon.post("/events/stripe", content=body, headers=signed(body, clock, "whsec_x"))
        ).status_code
        for _ in range(svc.settings.rate_limit_bad_signatures + 1)
    ]
    assert set(answers[:-1]) == {403}
    assert answers[-1] == 429


async def test_the_sources_credentials_are_never_kept_with_the_event(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    verify = {"type": "header", "header": "X-Token", "value": "t0ps3cr3t"}
    created = await client.post("/api/v1/event-sources", json={"name": "hook", "verify": verify})
    assert created.status_code == 201, created.text
    assert "t0ps3cr3t" not in created.text
    execution = await create(client)
    await park(client, execution["id"], events=[{"source": "hook", "match": {"kind": "a"}}])
    headers = {
        "X-Token": "t0ps3cr3t",
        "Authorization": "Basic eDp5",
        "Cookie": "c=1",
        "X-N8N-API-KEY": "wg_sent-by-mistake",
        "X-Api-Key": "k-3f9a",
    }
    response = await anon.post("/events/hook", json={"kind": "a"}, headers=headers)
    assert response.json() == {"matched": 1}
    found = await get(client, execution["id"], includeData="true", redactExecutionData="false")
    assert "t0ps3cr3t" not in str(found)
    assert "eDp5" not in str(found)
    listed = (await client.get("/api/v1/events")).json()["data"]
    detail = await client.get(f"/api/v1/events/{listed[0]['id']}")
    for secret in ("t0ps3cr3t", "eDp5", "wg_sent-by-mistake", "k-3f9a"):
        assert secret not in str(found)
        assert secret not in detail.text
