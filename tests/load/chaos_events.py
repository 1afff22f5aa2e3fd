"""The events of the chaos run: a Standard Webhooks source, signed deliveries into the storm.

The harness is the provider: it signs each delivery (``standardwebhooks``) with a fresh
timestamp and its event's ``webhook-id``, sends some events two or three times at once, and
delivers a cut one again until it is answered, as providers do (so redeliveries cross the
kills). Events are about orders: the executions parked with ``events`` wait for the event
about theirs (one execution, or two for a fan-out), racing resume calls, timers and stops;
lookback executions park only after their event was answered; strays match nothing.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import random
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx
from standardwebhooks import Webhook

from tests.load.chaos_model import (
    EVENT_NAME,
    ORDER_PATH,
    SOURCE,
    Delivery,
    Journal,
    Park,
    Plan,
    Sent,
    now_ms,
    request,
)

REDELIVER_SECONDS = 0.3
"""How soon the provider delivers a cut event again."""
Job = Callable[[], Coroutine[Any, Any, None]]


def conditions(order: str, literal: bool) -> list[dict[str, Any]]:
    """The ``events`` of a park waiting for the event about ``order``: the value given as is,
    or taken from the execution's customData."""
    value: Any = order if literal else {"customData": "orderId"}
    return [{"source": SOURCE, "name": EVENT_NAME, "match": {ORDER_PATH: value}}]


@dataclass
class Events:
    """Sends the run's events to ``anon`` (providers have no API key) and parks the lookback
    executions with ``http``; a cut delivery is sent again until ``give_up`` (monotonic)."""

    http: httpx.AsyncClient
    anon: httpx.AsyncClient
    secret: str = field(
        default_factory=lambda: "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    )
    give_up: float = math.inf

    async def create_source(self) -> None:
        """The Standard Webhooks source the run's events arrive at."""
        body = {"name": SOURCE, "verify": {"type": "standardWebhooks", "secret": self.secret}}
        created = await self.http.post("/api/v1/event-sources", json=body)
        created.raise_for_status()

    def _signed(self, event_id: str, body: bytes) -> dict[str, str]:
        at = datetime.now(UTC)
        signature = Webhook(self.secret).sign(event_id, at, body.decode())
        return {
            "webhook-id": event_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature,
            "content-type": "application/json",
        }

    async def deliver(self, sent: Sent) -> None:
        """Deliver ``sent`` until a delivery is answered (or it is time to give up)."""
        body = json.dumps({"type": sent.name, "order": {"id": sent.order}}).encode()
        while True:
            delivery = Delivery(f"{sent.event_id}/{len(sent.deliveries)}")
            sent.deliveries.append(delivery)
            headers = self._signed(sent.event_id, body)
            url = f"/events/{SOURCE}"
            answer = await request(self.anon, delivery, "POST", url, content=body, headers=headers)
            if delivery.status == 200 and isinstance(answer, dict):
                delivery.matched = answer.get("matched")
                delivery.duplicate = answer.get("duplicate") is True
            if delivery.status is not None or time.monotonic() > self.give_up:
                return
            await asyncio.sleep(REDELIVER_SECONDS)

    async def park_after(
        self, plan: Plan, sent: Sent, park: Park, literal: bool, redeliver: bool
    ) -> None:
        """Deliver the event, then park the execution waiting for it (again while the gateway
        refuses connections: then nothing was sent); maybe deliver it once more after."""
        assert plan.order is not None
        await self.deliver(sent)
        wait = {"events": conditions(plan.order, literal)}
        while True:
            park.sent_at = now_ms()
            try:
                response = await self.http.post(f"/api/v1/executions/{plan.eid}/wait", json=wait)
            except httpx.ConnectError:
                if time.monotonic() > self.give_up:
                    break
                await asyncio.sleep(REDELIVER_SECONDS)
                continue
            except httpx.TransportError:
                break  # cut: it may or may not have committed
            finally:
                park.answered_at = now_ms()
            park.status = response.status_code
            park.running = response.status_code == 200 and response.json()["status"] == "running"
            break
        if redeliver:
            await self.deliver(sent)


def event_jobs(
    events: Events,
    plans: list[Plan],
    at: dict[int, float],
    journal: Journal,
    rng: random.Random,
    seconds: float,
) -> list[tuple[float, Job]]:
    """Every event of the run at its moment in the window (``at``: each plan's moment, its
    resume calls go out then too): for each order waited on, its event delivered once, twice
    or three times (two at once), sometimes again seconds later, and for some a second event
    racing the first; each lookback execution's event and then its park; and strays, about
    no order or of another name, that match nothing."""
    timed: list[tuple[float, Job]] = []
    groups: dict[str, list[Plan]] = {}
    for plan in plans:
        if plan.order is not None and not plan.lookback:
            groups.setdefault(plan.order, []).append(plan)
    for order, group in groups.items():
        start = at[group[0].eid]
        targets = tuple(p.eid for p in group)
        first = journal.events[f"{order}-a"] = Sent(f"{order}-a", order, targets=targets)
        copies = rng.choices([1, 2, 3], weights=[40, 40, 20])[0]
        for k in range(copies):
            late = 0.0 if k < 2 else rng.uniform(0, 1.5)
            timed.append((start + late, partial(events.deliver, first)))
        if rng.random() < 0.15:  # a redelivery seconds later, often across a kill
            timed.append((start + rng.uniform(1, 3), partial(events.deliver, first)))
        if len(group) == 1 and rng.random() < 0.25:  # another event about the order races
            second = journal.events[f"{order}-b"] = Sent(f"{order}-b", order, targets=targets)
            timed.append((start + rng.uniform(0, 0.05), partial(events.deliver, second)))
    for plan in plans:
        if plan.lookback and plan.order is not None:
            sent = Sent(f"{plan.order}-a", plan.order, targets=(plan.eid,), lookback=True)
            journal.events[sent.event_id] = sent
            park = journal.parks[plan.eid] = Park(f"{plan.eid}-park")
            literal, redeliver = rng.random() < 0.5, rng.random() < 0.5
            timed.append(
                (at[plan.eid], partial(events.park_after, plan, sent, park, literal, redeliver))
            )
    waited = sorted(groups)
    for k in range(max(2, len(plans) // 25)):
        if waited and k % 2:  # about an order waited on, but not the name waited for
            sent = Sent(f"stray-{k}", rng.choice(waited), name="order.refunded")
        else:
            sent = Sent(f"stray-{k}", f"nobody-{k}")
        journal.events[sent.event_id] = sent
        start = rng.uniform(0, seconds * 0.9)
        timed += [(start, partial(events.deliver, sent)) for _ in range(rng.choice([1, 2]))]
    return timed
