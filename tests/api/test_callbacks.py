"""Callbacks to the engine: outbox, Standard Webhooks signatures, backoff, dead letters."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.clock import ManualClock, SystemClock
from gateway.config import Settings
from gateway.domain import parse_instant
from gateway.origins import origin_of
from gateway.services import Services
from tests.conftest import BASE_URL, create, get, make_key, park, running_gateway
from tests.receiver import Receiver


@pytest.fixture
def callback_settings(settings: Settings, receiver: Receiver) -> Settings:
    return dataclasses.replace(
        settings,
        callback_allowed_origins=(origin_of(receiver.url),),
        callback_backoff_base_seconds=1.0,
        callback_max_age_seconds=10.0,
    )


@pytest.fixture
async def gateway(
    callback_settings: Settings, clock: ManualClock
) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    async with running_gateway(callback_settings, clock) as (app, client):
        yield app, client


async def deliveries_when_settled(
    client: httpx.AsyncClient, eid: int, receiver: Receiver, status: str | None = None
) -> list[dict[str, Any]]:
    """The execution's deliveries once every request the receiver got is recorded (and, if
    given, the first delivery has ``status``), waiting a bounded time."""
    for _ in range(250):
        found: list[dict[str, Any]] = (
            await client.get(f"/api/v1/executions/{eid}/deliveries")
        ).json()["data"]
        recorded = sum(len(d["attempts"]) for d in found) == len(receiver.received)
        if recorded and (status is None or found[0]["status"] == status):
            return found
        await asyncio.sleep(0.02)
    raise AssertionError("deliveries never settled")


def event(received: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(received.body)
    return body


async def test_resume_is_delivered_once_with_standard_webhook_headers(
    gateway: tuple[Starlette, httpx.AsyncClient], receiver: Receiver
) -> None:
    _, client = gateway
    execution = await create(client, callbackUrl=receiver.url, customData={"order": "7"})
    parked = await park(client, execution["id"], webhook={"httpMethod": "POST"})
    assert (await client.post(parked["resumeUrl"], json={"ok": 1})).status_code == 200
    await receiver.wait_for(1)
    (got,) = receiver.received
    body = event(got)
    assert body["type"] == "execution.resumed"
    assert body["data"]["executionId"] == execution["id"]
    assert body["data"]["resumedBy"] == "webhook"
    assert body["data"]["payload"]["body"] == {"ok": 1}
    assert body["data"]["customData"] == {"order": "7"}
    assert body["data"]["wait"]["seq"] == 1
    assert got.headers["webhook-id"].startswith("msg_")
    assert got.headers["webhook-signature"].startswith("v1,")
    (delivery,) = await deliveries_when_settled(client, execution["id"], receiver, "delivered")
    assert delivery["id"] == got.headers["webhook-id"]
    assert [a["statusCode"] for a in delivery["attempts"]] == [200]


async def test_signature_verifies_with_the_standardwebhooks_package(
    callback_settings: Settings, receiver: Receiver
) -> None:
    app = create_app(callback_settings, clock=SystemClock())
    async with app.router.lifespan_context(app):
        svc: Services = app.state.services
        key = await make_key(svc)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url=BASE_URL, headers={"X-N8N-API-KEY": key}
        ) as client:
            execution = await create(client, callbackUrl=receiver.url)
            await park(client, execution["id"], webhook={})
            await client.post(f"/api/v1/executions/{execution['id']}/resume", json={})
            await receiver.wait_for(1)
    assert svc.settings.callback_secret is not None
    verifier = Webhook(svc.settings.callback_secret.reveal())
    (got,) = receiver.received
    assert verifier.verify(got.body, got.headers)["type"] == "execution.resumed"
    tampered = got.body.replace(b"execution.resumed", b"execution.resumeX")
    with pytest.raises(Exception, match=r"(?i)signature"):
        verifier.verify(tampered, got.headers)


async def test_timeout_stop_and_retry_are_announced(
    gateway: tuple[Starlette, httpx.AsyncClient], receiver: Receiver, clock: ManualClock
) -> None:
    app, client = gateway
    svc: Services = app.state.services
    timed = await create(client, callbackUrl=receiver.url)
    await park(client, timed["id"], waitTill="2026-01-01T00:00:05Z")
    clock.advance(5_250)
    await svc.scheduler.run_due()
    await receiver.wait_for(1)
    resumed = event(receiver.received[0])["data"]
    assert (resumed["resumedBy"], resumed["latenessMs"]) == ("timeout", 250)

    stopped = await create(client, callbackUrl=receiver.url)
    await client.post(f"/api/v1/executions/{stopped['id']}/stop")
    await receiver.wait_for(2)
    assert event(receiver.received[1])["type"] == "execution.canceled"

    retried = (await client.post(f"/api/v1/executions/{stopped['id']}/retry")).json()
    await receiver.wait_for(3)
    announced = event(receiver.received[2])
    assert announced["type"] == "execution.retry"
    assert (announced["data"]["executionId"], announced["data"]["retryOf"]) == (
        retried["id"],
        stopped["id"],
    )


async def test_failures_back_off_then_die_and_crash_the_execution_then_redeliver(
    gateway: tuple[Starlette, httpx.AsyncClient], receiver: Receiver, clock: ManualClock
) -> None:
    app, client = gateway
    svc: Services = app.state.services
    receiver.default_status = 503
    execution = await create(client, callbackUrl=receiver.url)
    await park(client, execution["id"], webhook={})
    await client.post(f"/api/v1/executions/{execution['id']}/resume", json={})
    await receiver.wait_for(1)
    delays = []
    for _ in range(20):
        (delivery,) = await deliveries_when_settled(client, execution["id"], receiver)
        if delivery["status"] != "pending":
            break
        before, sent = clock.now_ms(), len(receiver.received)
        clock.set(_ms(delivery["nextAttemptAt"]))
        delays.append(clock.now_ms() - before)
        await svc.dispatcher.run_due()
        # The attempt may be the background dispatcher's, woken by the clock: read the delivery
        # again only once it has been made (else its old nextAttemptAt reads as no delay).
        await receiver.wait_for(sent + 1)
    assert delivery["status"] == "dead"
    # exponential: each wait at least half the doubled ceiling, within the 10 s maximum age
    assert len(delays) >= 2
    assert all(later > earlier for earlier, later in itertools.pairwise(delays))
    assert {a["statusCode"] for a in delivery["attempts"]} == {503}
    crashed = await get(client, execution["id"])
    assert crashed["status"] == "crashed"
    ids = {r.headers["webhook-id"] for r in receiver.received}
    assert ids == {delivery["id"]}  # the same webhook-id on every attempt

    receiver.default_status = 200
    again = await client.post(f"/api/v1/deliveries/{delivery['id']}/redeliver")
    assert again.status_code == 202
    await receiver.wait_for(len(delivery["attempts"]) + 1)
    (final,) = await deliveries_when_settled(client, execution["id"], receiver, "delivered")
    assert final["id"] == delivery["id"]
    missing = await client.post("/api/v1/deliveries/msg_nope/redeliver")
    assert missing.status_code == 404


def _ms(instant: str) -> int:
    return parse_instant(instant, "nextAttemptAt")


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://169.254.169.254/latest/meta-data", "is not allowed"),
        ("http://localhost:9/x", "is not allowed"),
        ("ftp://127.0.0.1/x", "http(s) URL"),
        ("http://user:pw@127.0.0.1/x", "credentials"),
    ],
)
async def test_callback_targets_outside_the_allowed_hosts_are_refused(
    gateway: tuple[Starlette, httpx.AsyncClient], url: str, fragment: str
) -> None:
    _, client = gateway
    response = await client.post("/api/v1/executions", json={"workflowId": "w", "callbackUrl": url})
    assert response.status_code == 400
    assert fragment in response.json()["message"]
    listed = await client.get("/api/v1/executions", params={"status": "running"})
    assert listed.json()["data"] == []


async def test_no_callback_url_means_no_outbox(client: httpx.AsyncClient, svc: Services) -> None:
    execution = await create(client)
    await park(client, execution["id"], webhook={})
    await client.post(f"/api/v1/executions/{execution['id']}/resume", json={})
    deliveries = (await client.get(f"/api/v1/executions/{execution['id']}/deliveries")).json()
    assert deliveries == {"data": []}
    assert await svc.store.next_delivery_due() is None
