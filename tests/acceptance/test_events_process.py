"""Events end to end against a real ``waitgate serve``: a Stripe-signed payment event resumes the
order that waits for it, once; its callback arrives; a redelivery changes nothing; an event
that arrives before the park is applied at park."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
import stripe

from gateway.origins import origin_of
from tests.acceptance.conftest import SpawnGateway
from tests.receiver import Receiver, running_receiver

pytestmark = pytest.mark.acceptance
SECRET = "whsec_" + "c2VjcmV0LWZvci10aGUtc3RyaXBlLXNvdXJjZQ"


def payment_event(event_id: str, order_id: str) -> bytes:
    """A ``payment_intent.succeeded`` event as Stripe sends it (the fields we match on)."""
    event = {
        "id": event_id,
        "object": "event",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_1", "metadata": {"orderId": order_id}, "amount": 4200}},
    }
    return json.dumps(event).encode()


def stripe_signed(body: bytes) -> dict[str, str]:
    """The ``Stripe-Signature`` header the ``stripe`` package makes for ``body``."""
    header: str = stripe.WebhookSignature.generate_signature_header(
        body.decode(), SECRET, timestamp=int(time.time())
    )
    return {"Stripe-Signature": header, "Content-Type": "application/json"}


async def order_waiting_for_payment(
    client: httpx.AsyncClient, receiver: Receiver, order_id: str
) -> int:
    created = await client.post(
        "/api/v1/executions",
        json={
            "workflowId": "orders",
            "customData": {"orderId": order_id},
            "callbackUrl": receiver.url,
        },
    )
    assert created.status_code == 201, created.text
    eid: int = created.json()["id"]
    condition = {
        "source": "stripe",
        "name": "payment_intent.succeeded",
        "match": {"data.object.metadata.orderId": {"customData": "orderId"}},
    }
    parked = await client.post(f"/api/v1/executions/{eid}/wait", json={"events": [condition]})
    assert parked.status_code == 200, parked.text
    return eid


async def execution(client: httpx.AsyncClient, eid: int) -> dict[str, Any]:
    found: dict[str, Any] = (
        await client.get(f"/api/v1/executions/{eid}", params={"includeData": "true"})
    ).json()
    return found


async def delivered(client: httpx.AsyncClient, eid: int) -> list[dict[str, Any]]:
    """The execution's deliveries once none is pending any more."""
    for _ in range(200):
        found: list[dict[str, Any]] = (
            await client.get(f"/api/v1/executions/{eid}/deliveries")
        ).json()["data"]
        if found and all(d["status"] != "pending" for d in found):
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"deliveries of {eid} still pending")


async def test_a_stripe_event_resumes_the_order_waiting_for_it_once(
    spawn_gateway: SpawnGateway,
) -> None:
    async with running_receiver() as receiver:
        gateway = await asyncio.to_thread(
            spawn_gateway, {"WAITGATE_CALLBACK_ALLOWED_ORIGINS": origin_of(receiver.url)}
        )
        (key,) = gateway.admin_keys()
        async with (
            httpx.AsyncClient(base_url=gateway.url, headers={"X-N8N-API-KEY": key}) as client,
            httpx.AsyncClient(base_url=gateway.url) as stripe_side,
        ):
            source = await client.post(
                "/api/v1/event-sources",
                json={"name": "stripe", "verify": {"type": "stripe", "secret": SECRET}},
            )
            assert source.status_code == 201, source.text
            eid = await order_waiting_for_payment(client, receiver, "ord_42")

            forged = payment_event("evt_forged", "ord_42")
            refused = await stripe_side.post(
                "/events/stripe", content=forged, headers={"Stripe-Signature": "t=1,v1=00"}
            )
            assert refused.status_code in {401, 403}
            assert (await execution(client, eid))["status"] == "waiting"

            body = payment_event("evt_1", "ord_42")
            answered = await stripe_side.post(
                "/events/stripe", content=body, headers=stripe_signed(body)
            )
            assert answered.status_code == 200, answered.text
            assert answered.json()["matched"] == 1
            resumed = await execution(client, eid)
            assert resumed["status"] == "running"
            payload = resumed["data"]["waits"][0]["payload"]
            assert payload["resumedBy"] == "event"
            assert payload["eventId"] == "evt_1"

            again = await stripe_side.post(
                "/events/stripe", content=body, headers=stripe_signed(body)
            )
            assert again.status_code == 200
            assert again.json()["matched"] == 0
            await receiver.wait_for(1, within=10)
            (callback,) = [json.loads(r.body) for r in receiver.received]
            assert callback["type"] == "execution.resumed"
            assert callback["data"]["executionId"] == eid
            assert callback["data"]["payload"]["eventId"] == "evt_1"
            deliveries = await delivered(client, eid)
            assert [d["event"] for d in deliveries] == ["execution.resumed"]
            assert deliveries[0]["id"] == receiver.received[0].headers["webhook-id"]

            early = payment_event("evt_2", "ord_43")
            kept = await stripe_side.post(
                "/events/stripe", content=early, headers=stripe_signed(early)
            )
            assert kept.status_code == 200
            assert kept.json()["matched"] == 0
            late = await order_waiting_for_payment(client, receiver, "ord_43")
            applied = await execution(client, late)
            assert applied["status"] == "running"
            assert applied["data"]["waits"][0]["payload"]["eventId"] == "evt_2"
