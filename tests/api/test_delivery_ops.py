"""Delivery operations (issue 17): per-endpoint breakers and concurrency, abort answers, bulk
recovery, several callback secrets, operational events; real receivers over sockets, time
injected (``ManualClock``) wherever time decides."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from starlette.applications import Starlette

from gateway.client import verify_callback
from gateway.clock import ManualClock, SystemClock
from gateway.config import Secret, Settings
from gateway.domain import format_instant
from gateway.origins import origin_of
from gateway.services import Services
from tests.api.test_ui import signed_in
from tests.conftest import create, get, make_key, park, running_gateway
from tests.receiver import Received, Receiver, running_receiver

NEW_SECRET = "whsec_" + "bmV3LXNlY3JldC1vZi10aGlydHktdHdvLWJ5dGVzISE="
OLD_SECRET = "whsec_" + "b2xkLXNlY3JldC1vZi10aGlydHktdHdvLWJ5dGVzISE="
THRESHOLD = 3
COOLDOWN_MS = 30_000
ABORT = {"webhook-delivery": "abort-message"}


@dataclasses.dataclass
class Peers:
    """The engines' endpoints and the operator's, each a real server on loopback."""

    healthy: Receiver
    failing: Receiver
    operator: Receiver


@pytest.fixture
async def peers() -> AsyncIterator[Peers]:
    async with (
        running_receiver() as healthy,
        running_receiver() as failing,
        running_receiver() as operator,
    ):
        yield Peers(healthy, failing, operator)


@pytest.fixture
def ops_settings(settings: Settings, peers: Peers) -> Settings:
    return dataclasses.replace(
        settings,
        callback_allowed_origins=(origin_of(peers.healthy.url), origin_of(peers.failing.url)),
        callback_backoff_base_seconds=1.0,
        callback_max_age_seconds=600.0,
        callback_secret=Secret(f"{NEW_SECRET} {OLD_SECRET}"),
        endpoint_failure_threshold=THRESHOLD,
        endpoint_cooldown_seconds=COOLDOWN_MS / 1000,
        endpoint_concurrency=2,
        operations_url=peers.operator.url,
    )


@pytest.fixture
async def gateway(
    ops_settings: Settings, clock: ManualClock
) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    async with running_gateway(ops_settings, clock) as (app, client):
        yield app, client


async def resumed(client: httpx.AsyncClient, url: str) -> int:
    """An execution parked and resumed: its ``execution.resumed`` callback is in the outbox."""
    execution = await create(client, callbackUrl=url)
    await park(client, execution["id"], webhook={})
    answer = await client.post(f"/api/v1/executions/{execution['id']}/resume", json={})
    assert answer.status_code == 200, answer.text
    eid: int = execution["id"]
    return eid


async def endpoint(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    """The API's view of the endpoint of ``url``."""
    listed = (await client.get("/api/v1/endpoints")).json()["data"]
    found: dict[str, Any] = next(e for e in listed if e["endpoint"] == origin_of(url))
    return found


async def deliveries(client: httpx.AsyncClient, eid: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await client.get(f"/api/v1/executions/{eid}/deliveries")).json()[
        "data"
    ]
    return found


def events(receiver: Receiver) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in receiver.received]


def ops_events(receiver: Receiver) -> list[dict[str, Any]]:
    """The operator's events, each verified with the new secret (at the time it was sent: the
    clock is injected)."""
    return [
        verify_callback(r.headers, r.body, NEW_SECRET, now=int(r.headers["webhook-timestamp"]))
        for r in receiver.received
    ]


async def settle(svc: Services) -> None:
    """Run the dispatcher until nothing is due and nothing in flight, twice in a row (the app's
    own dispatcher loop may be sending at the same time)."""
    idle = 0
    for _ in range(500):
        sent = await svc.dispatcher.run_due()
        idle = idle + 1 if sent == 0 and svc.dispatcher.in_flight == 0 else 0
        if idle == 2:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the dispatcher never settled")


async def test_a_failing_endpoint_trips_while_a_healthy_one_goes_on_then_a_probe_closes_it(
    gateway: tuple[Starlette, httpx.AsyncClient], peers: Peers, clock: ManualClock
) -> None:
    app, client = gateway
    svc: Services = app.state.services
    peers.failing.default_status = 503
    failing = [await resumed(client, peers.failing.url) for _ in range(THRESHOLD)]
    await settle(svc)
    assert len(peers.failing.received) == THRESHOLD
    state = await endpoint(client, peers.failing.url)
    assert (state["state"], state["consecutiveFailures"]) == ("open", THRESHOLD)
    assert state["counts"]["pending"] == THRESHOLD

    # while it is open: retries and new deliveries to it wait, the healthy endpoint's go at once
    failing.append(await resumed(client, peers.failing.url))
    clock.advance(COOLDOWN_MS // 2)  # every retry of the failing endpoint is due by now
    healthy = [await resumed(client, peers.healthy.url) for _ in range(5)]
    await settle(svc)
    assert len(peers.failing.received) == THRESHOLD
    for eid in healthy:
        (delivery,) = await deliveries(client, eid)
        assert delivery["status"] == "delivered"
        (attempt,) = delivery["attempts"]
        assert attempt["attemptedAt"] == delivery["createdAt"]  # not delayed at all

    # the cool-down ends: exactly one probe; it fails, so the breaker opens again
    clock.advance(COOLDOWN_MS // 2)
    await settle(svc)
    assert len(peers.failing.received) == THRESHOLD + 1
    assert (await endpoint(client, peers.failing.url))["state"] == "open"

    # the endpoint recovers: the next probe closes it, and everything waiting is delivered
    peers.failing.default_status = 200
    clock.advance(COOLDOWN_MS)
    await settle(svc)
    state = await endpoint(client, peers.failing.url)
    assert (state["state"], state["consecutiveFailures"]) == ("closed", 0)
    for eid in failing:
        assert [d["status"] for d in await deliveries(client, eid)] == ["delivered"]
        assert (await get(client, eid))["status"] == "running"  # nothing died meanwhile
    ids = {r.headers["webhook-id"] for r in peers.failing.received}
    assert len(ids) == len(failing)  # each delivery kept its webhook-id across attempts

    await peers.operator.wait_for(2)
    await settle(svc)
    told = ops_events(peers.operator)
    assert [e["type"] for e in told] == ["endpoint.disabled", "endpoint.recovered"]
    assert {e["data"]["endpoint"] for e in told} == {origin_of(peers.failing.url)}
    assert told[0]["data"]["consecutiveFailures"] == THRESHOLD


async def test_a_hanging_endpoint_holds_only_its_concurrency_and_never_the_others(
    ops_settings: Settings, peers: Peers
) -> None:
    """The app's own dispatcher loop, real time: five callbacks to an endpoint that never
    answers take two slots (its concurrency); the healthy endpoint's arrive meanwhile."""
    settings = dataclasses.replace(ops_settings, callback_timeout_seconds=30.0)
    peers.failing.answering.clear()
    async with running_gateway(settings, SystemClock()) as (_, client):
        for _ in range(5):
            await resumed(client, peers.failing.url)
        await peers.failing.wait_for(2)
        healthy = [await resumed(client, peers.healthy.url) for _ in range(6)]
        await peers.healthy.wait_for(len(healthy))
        await asyncio.sleep(0.2)
        assert len(peers.failing.received) == 2
        peers.failing.answering.set()
        await peers.failing.wait_for(5)


async def test_an_abort_answer_stops_the_retries_and_is_told(
    gateway: tuple[Starlette, httpx.AsyncClient], peers: Peers, clock: ManualClock
) -> None:
    app, client = gateway
    svc: Services = app.state.services
    peers.failing.default_status = 409
    peers.failing.answer_headers = ABORT
    eid = await resumed(client, peers.failing.url)
    await settle(svc)
    (delivery,) = await deliveries(client, eid)
    assert delivery["status"] == "aborted"
    assert "aborted by the receiver" in delivery["lastError"]
    crashed = await get(client, eid)
    assert crashed["status"] == "crashed"  # like a dead execution.resumed: the engine refused it
    clock.advance(3600_000)
    await settle(svc)
    assert len(peers.failing.received) == 1
    state = await endpoint(client, peers.failing.url)
    assert (state["state"], state["consecutiveFailures"], state["counts"]["aborted"]) == (
        "closed",
        0,
        1,
    )
    await peers.operator.wait_for(1)
    (told,) = ops_events(peers.operator)
    assert told["type"] == "delivery.exhausted"
    assert told["data"] | {"lastError": None} == {
        "deliveryId": delivery["id"],
        "executionId": eid,
        "event": "execution.resumed",
        "endpoint": origin_of(peers.failing.url),
        "status": "aborted",
        "attempts": 1,
        "lastError": None,
    }


async def test_an_abort_header_on_a_2xx_changes_nothing(
    gateway: tuple[Starlette, httpx.AsyncClient], peers: Peers
) -> None:
    app, client = gateway
    peers.healthy.answer_headers = ABORT
    eid = await resumed(client, peers.healthy.url)
    await settle(app.state.services)
    assert [d["status"] for d in await deliveries(client, eid)] == ["delivered"]


async def test_a_failing_operator_endpoint_is_never_told_about_itself(
    ops_settings: Settings, peers: Peers, clock: ManualClock
) -> None:
    """The operator's endpoint fails too: its breaker opens and its events wait, but no event
    is ever written about its own deliveries or its own breaker (no loop)."""
    settings = dataclasses.replace(
        ops_settings, operations_url=peers.failing.url, callback_max_age_seconds=0.1
    )
    peers.healthy.default_status = 503
    peers.failing.default_status = 503
    async with running_gateway(settings, clock) as (app, client):
        svc: Services = app.state.services
        for _ in range(4):
            await resumed(client, peers.healthy.url)
        await settle(svc)

        async def operator_rows() -> int:
            state = await endpoint(client, peers.failing.url)
            return sum(state["counts"].values())

        clock.advance(COOLDOWN_MS + 1)
        await settle(svc)
        written = await operator_rows()
        for _ in range(4):
            clock.advance(COOLDOWN_MS + 1)
            await settle(svc)
        assert await operator_rows() == written  # no new operational events, ever
        told = events(peers.failing)
        assert {e["type"] for e in told} == {"delivery.exhausted", "endpoint.disabled"}
        assert {e["data"].get("event") for e in told} <= {"execution.resumed", None}
        disabled = {e["data"]["endpoint"] for e in told if e["type"] == "endpoint.disabled"}
        assert disabled == {origin_of(peers.healthy.url)}
        assert (await endpoint(client, peers.failing.url))["state"] == "open"


async def test_bulk_recover_resends_exactly_the_dead_of_its_window_once(
    ops_settings: Settings, peers: Peers, clock: ManualClock
) -> None:
    settings = dataclasses.replace(
        ops_settings, callback_max_age_seconds=0.1, endpoint_failure_threshold=100
    )
    peers.failing.default_status = 503
    async with running_gateway(settings, clock) as (app, client):
        svc: Services = app.state.services
        early = [await resumed(client, peers.failing.url) for _ in range(3)]
        delivered = await resumed(client, peers.healthy.url)
        await settle(svc)
        clock.advance(60_000)
        since = clock.now_ms()
        inside = [await resumed(client, peers.failing.url) for _ in range(2)]
        await settle(svc)
        clock.advance(60_000)
        until = clock.now_ms()
        late = await resumed(client, peers.failing.url)
        await settle(svc)
        for eid in [*early, *inside, late]:
            assert [d["status"] for d in await deliveries(client, eid)] == ["dead"]
        first_ids = {eid: (await deliveries(client, eid))[0]["id"] for eid in inside}

        peers.failing.default_status = 200
        before = len(peers.failing.received)
        window = {"since": format_instant(since), "until": format_instant(until)}
        answer = await client.post("/api/v1/deliveries/recover", json=window)
        assert answer.status_code == 202, answer.text
        assert answer.json()["recovered"] == 2
        assert set(answer.json()["ids"]) == set(first_ids.values())
        again = await client.post("/api/v1/deliveries/recover", json=window)
        assert again.json() == {"recovered": 0, "more": False, "ids": []}  # pending already
        await settle(svc)
        resent = peers.failing.received[before:]
        assert sorted(r.headers["webhook-id"] for r in resent) == sorted(first_ids.values())
        for eid in inside:
            assert [d["status"] for d in await deliveries(client, eid)] == ["delivered"]
        for eid in [*early, late]:
            assert [d["status"] for d in await deliveries(client, eid)] == ["dead"]
        assert [d["status"] for d in await deliveries(client, delivered)] == ["delivered"]
        done = await client.post("/api/v1/deliveries/recover", json=window)
        assert done.json()["recovered"] == 0  # delivered now: nothing to recover

        # the rest, by endpoint: the healthy endpoint has no dead delivery
        rest = {"since": "2000-01-01T00:00:00Z", "endpoint": peers.healthy.url.rsplit("/", 1)[0]}
        assert (await client.post("/api/v1/deliveries/recover", json=rest)).json()["recovered"] == 0
        rest["endpoint"] = origin_of(peers.failing.url)
        assert (await client.post("/api/v1/deliveries/recover", json=rest)).json()["recovered"] == 4


async def test_every_callback_is_signed_with_each_secret_and_both_verify(
    ops_settings: Settings, peers: Peers
) -> None:
    async with running_gateway(ops_settings, SystemClock()) as (_, client):
        await resumed(client, peers.healthy.url)
        await peers.healthy.wait_for(1)
    (got,) = peers.healthy.received
    signatures = got.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert all(s.startswith("v1,") for s in signatures)
    for secret in (NEW_SECRET, OLD_SECRET):
        assert Webhook(secret).verify(got.body, got.headers)["type"] == "execution.resumed"
        assert verify_callback(got.headers, got.body, secret)["type"] == "execution.resumed"
    stranger = "whsec_" + "c3RyYW5nZXItc2VjcmV0LW9mLXRoaXJ0eS10d28tYnk="
    with pytest.raises(Exception, match=r"(?i)signature"):
        Webhook(stranger).verify(got.body, got.headers)
    forged = Received({**got.headers, "webhook-signature": signatures[1]}, got.body + b" ")
    with pytest.raises(Exception, match=r"(?i)signature"):
        Webhook(OLD_SECRET).verify(forged.body, forged.headers)


async def test_the_breaker_survives_a_restart(
    ops_settings: Settings, peers: Peers, clock: ManualClock
) -> None:
    peers.failing.default_status = 503
    async with running_gateway(ops_settings, clock) as (app, client):
        for _ in range(THRESHOLD):
            await resumed(client, peers.failing.url)
        await settle(app.state.services)
        assert (await endpoint(client, peers.failing.url))["state"] == "open"
    clock.advance(COOLDOWN_MS // 2)
    async with running_gateway(ops_settings, clock) as (app, client):
        await settle(app.state.services)
        state = await endpoint(client, peers.failing.url)
        assert (state["state"], state["consecutiveFailures"]) == ("open", THRESHOLD)
        assert len(peers.failing.received) == THRESHOLD  # nothing sent to it after the restart
        peers.failing.default_status = 200
        clock.advance(COOLDOWN_MS)
        await settle(app.state.services)
        assert (await endpoint(client, peers.failing.url))["state"] == "closed"
        assert len(peers.failing.received) == 2 * THRESHOLD


async def test_endpoint_states_are_metrics(
    gateway: tuple[Starlette, httpx.AsyncClient], peers: Peers
) -> None:
    app, client = gateway
    peers.failing.default_status = 503
    for _ in range(THRESHOLD):
        await resumed(client, peers.failing.url)
    await resumed(client, peers.healthy.url)
    await settle(app.state.services)
    text = (await client.get("/metrics")).text
    assert 'waitgate_delivery_endpoints{state="open"} 1.0' in text
    assert 'waitgate_delivery_endpoints{state="closed"}' in text
    assert 'waitgate_delivery_breaker_transitions_total{transition="endpoint.disabled"}' in text


async def test_the_overview_page_lists_the_endpoints_with_their_breakers(
    gateway: tuple[Starlette, httpx.AsyncClient], peers: Peers
) -> None:
    app, client = gateway
    svc: Services = app.state.services
    peers.failing.default_status = 503
    for _ in range(THRESHOLD):
        await resumed(client, peers.failing.url)
    await resumed(client, peers.healthy.url)
    await settle(svc)
    ui = await signed_in(app, await make_key(svc, "execution:list", "execution:read"))
    text = (await ui.get("/ui/overview")).text
    await ui.aclose()
    assert "Delivery endpoints" in text
    rows = re.findall(
        r"<tr><td><code>([^<]+)</code></td>\s*<td><span class=\"status ([a-z-]+)\"", text
    )
    assert sorted(rows) == sorted(
        [
            (origin_of(peers.failing.url), "breaker-open"),
            (origin_of(peers.healthy.url), "breaker-closed"),
            (origin_of(peers.operator.url), "breaker-closed"),  # it was told of the failing one
        ]
    )
    lister = await signed_in(app, await make_key(svc, "execution:list"))
    assert "Delivery endpoints" not in (await lister.get("/ui/overview")).text
    await lister.aclose()


async def test_a_rate_limit_spaces_one_endpoints_deliveries_in_injected_time(
    ops_settings: Settings, peers: Peers, clock: ManualClock
) -> None:
    settings = dataclasses.replace(ops_settings, endpoint_rate_limit=1.0)
    async with running_gateway(settings, clock) as (app, client):
        svc: Services = app.state.services
        limited = [await resumed(client, peers.failing.url) for _ in range(3)]
        await settle(svc)
        assert len(peers.failing.received) == 1
        clock.advance(1000)
        await settle(svc)
        assert len(peers.failing.received) == 2
        clock.advance(1000)
        await settle(svc)
        assert len(peers.failing.received) == 3
        for eid in limited:
            (delivery,) = await deliveries(client, eid)
            assert len(delivery["attempts"]) == 1  # deferring is not an attempt
