"""Three ``waitgate serve`` replicas on one PostgreSQL: exactly once, nothing lost, callbacks.

Parks executions with webhook and timer waits and waits for HMAC-signed events (about an
order: one execution's, or two executions' for a fan-out), fires duplicate resume calls and
duplicate deliveries of each event at random replicas while timers expire, parks more
executions at one replica while their event arrives at another (so each is matched at once
or applied at park), SIGKILLs and restarts one replica in the middle, then checks from the
database (through the API) and the callback receiver. Prints the figures.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backends import truncate_postgres
from tests.process import GatewayProcess
from tests.receiver import Receiver, free_port, running_receiver

pytestmark = pytest.mark.acceptance
WEBHOOK_WAITS = 400
TIMER_WAITS = 300
FANOUT_WAITS = 60
EVENT_WAITS = 140
RACING_PARKS = 100
PARKED = WEBHOOK_WAITS + TIMER_WAITS + FANOUT_WAITS + EVENT_WAITS
CONCURRENCY = 32
SOURCE, SECRET = "orders", secrets.token_urlsafe(32)
Job = Callable[[list[GatewayProcess]], Awaitable[None]]
"""A request of the storm, given the replicas it may go to."""


@dataclass
class Seen:
    """What the clients saw: resume call and park answers, and each event's answers."""

    codes: Counter[int] = field(default_factory=Counter)
    acknowledged: set[int] = field(default_factory=set)
    applied_at_park: set[int] = field(default_factory=set)
    answers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _replicas(tmp_path: Path, database_url: str, receiver_port: int) -> list[GatewayProcess]:
    shared = {
        "WAITGATE_DATABASE_URL": database_url,
        "WAITGATE_SECRET_KEYS": secrets.token_urlsafe(32),
        "WAITGATE_CALLBACK_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "WAITGATE_CALLBACK_ALLOWED_ORIGINS": f"http://127.0.0.1:{receiver_port}",
        "WAITGATE_CALLBACK_TIMEOUT": "2",
    }
    replicas = []
    for n in range(3):
        workdir = tmp_path / f"replica{n}"
        workdir.mkdir()
        replicas.append(GatewayProcess(workdir, shared, name=f"replica{n}"))
    return replicas


def _on(replica: GatewayProcess, url: str) -> str:
    """The same resume URL, sent to another replica."""
    path = url.split("/webhook-waiting/", 1)[1]
    return f"{replica.url}/webhook-waiting/{path}"


async def _bounded(jobs: list[Awaitable[Any]]) -> list[Any]:
    slots = asyncio.Semaphore(CONCURRENCY)

    async def run(job: Awaitable[Any]) -> Any:
        async with slots:
            return await job

    return await asyncio.gather(*(run(j) for j in jobs))


def _order(n: int) -> str:
    """The order execution ``n`` waits on: fan-out executions two by two, the others alone."""
    return f"order-{n // 2 if n < WEBHOOK_WAITS + TIMER_WAITS + FANOUT_WAITS else n}"


def _wait_body(n: int) -> dict[str, Any]:
    """Webhook waits, then webhook-or-timer waits, then waits for the event about their order
    (fan-out pairs; then alone, half of them also with a URL, half of those with a timer)."""
    deadline = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    events = [{"source": SOURCE, "name": "order.paid", "match": {"order.id": _order(n)}}]
    if n < WEBHOOK_WAITS:
        return {"webhook": {"httpMethod": "POST"}}
    if n < WEBHOOK_WAITS + TIMER_WAITS:
        return {"waitTill": deadline, "webhook": {"httpMethod": "POST"}}
    if n < PARKED - EVENT_WAITS // 2:
        return {"events": events}
    if n < PARKED - EVENT_WAITS // 4:
        return {"events": events, "webhook": {"httpMethod": "POST"}}
    return {"events": events, "webhook": {"httpMethod": "POST"}, "waitTill": deadline}


async def _create(
    http: httpx.AsyncClient, base: str, headers: dict[str, str], receiver: Receiver
) -> int:
    created = await http.post(
        f"{base}/api/v1/executions",
        json={"workflowId": "replicas", "callbackUrl": receiver.url},
        headers=headers,
    )
    created.raise_for_status()
    eid: int = created.json()["id"]
    return eid


async def _park_all(
    http: httpx.AsyncClient, replicas: list[GatewayProcess], key: str, receiver: Receiver
) -> list[dict[str, Any]]:
    headers = {"X-N8N-API-KEY": key}
    source = {
        "name": SOURCE,
        "verify": {"type": "hmac", "header": "X-Signature", "secret": SECRET},
        "eventIdPath": "id",
        "eventNamePath": "type",
    }
    made = await http.post(f"{replicas[0].url}/api/v1/event-sources", json=source, headers=headers)
    assert made.status_code == 201, made.text

    async def one(n: int) -> dict[str, Any]:
        base = replicas[n % 3].url
        eid = await _create(http, base, headers, receiver)
        url = f"{base}/api/v1/executions/{eid}/wait"
        parked = await http.post(url, json=_wait_body(n), headers=headers)
        assert parked.status_code == 200, parked.text
        body: dict[str, Any] = parked.json()
        return body

    return await _bounded([one(n) for n in range(PARKED)])


@dataclass
class Storm:
    """The requests of the storm; each sent to one of the replicas it is given."""

    http: httpx.AsyncClient
    headers: dict[str, str]
    seen: Seen

    async def deliver(self, order: str, replicas: list[GatewayProcess]) -> None:
        """One delivery of the event about ``order``, HMAC-signed, at a random replica."""
        event_id = f"evt-{order}"
        body = json.dumps({"id": event_id, "type": "order.paid", "order": {"id": order}})
        signature = hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
        headers = {"X-Signature": signature, "Content-Type": "application/json"}
        url = f"{random.choice(replicas).url}/events/{SOURCE}"
        answer = await self.http.post(url, content=body, headers=headers)
        assert answer.status_code == 200, answer.text
        self.seen.answers.setdefault(event_id, []).append(answer.json())

    async def call(self, resume_url: str, replicas: list[GatewayProcess]) -> None:
        """The resume URL, called at a random replica."""
        answer = await self.http.post(_on(random.choice(replicas), resume_url), json={})
        self.seen.codes[answer.status_code] += 1
        if answer.status_code == 200:
            self.seen.acknowledged.add(int(answer.url.path.rsplit("/", 1)[1]))

    async def racing_park(self, eid: int, replicas: list[GatewayProcess]) -> None:
        """Park ``eid`` at one replica while its event arrives at another."""
        order = f"racing-{eid}"
        wait = {"events": [{"source": SOURCE, "match": {"order.id": order}}]}
        parking, receiving = random.sample(replicas, 2)

        async def park() -> None:
            url = f"{parking.url}/api/v1/executions/{eid}/wait"
            parked = await self.http.post(url, json=wait, headers=self.headers)
            assert parked.status_code == 200, parked.text
            if parked.json()["status"] == "running":
                self.seen.applied_at_park.add(eid)

        await asyncio.gather(park(), self.deliver(order, [receiving]))


def _jobs(storm: Storm, parked: list[dict[str, Any]], racing: list[int]) -> list[Job]:
    """Two calls of each resume URL (one for a wait that also takes events), two deliveries
    of each event, and each racing park with its event and a duplicate of it, shuffled."""
    jobs: list[Job] = []
    for p in parked:
        if "resumeUrl" in p:
            calls = 1 if p["data"]["waits"][0]["events"] else 2
            jobs += [partial(storm.call, p["resumeUrl"])] * calls
    for order in sorted({_order(n) for n in range(WEBHOOK_WAITS + TIMER_WAITS, PARKED)}):
        jobs += [partial(storm.deliver, order)] * 2
    for eid in racing:
        jobs += [partial(storm.racing_park, eid), partial(storm.deliver, f"racing-{eid}")]
    random.shuffle(jobs)
    return jobs


async def test_three_replicas_resume_exactly_once(tmp_path: Path, postgres_url: str) -> None:
    await truncate_postgres(postgres_url)
    receiver_port = free_port()
    replicas = _replicas(tmp_path, postgres_url, receiver_port)
    await asyncio.gather(*(asyncio.to_thread(r.start) for r in replicas))  # start together
    try:
        keys = [k for r in replicas for k in r.admin_keys()]
        assert len(keys) == 1, "replicas starting together must print one admin key"
        headers = {"X-N8N-API-KEY": keys[0]}
        async with (
            running_receiver(receiver_port) as receiver,
            httpx.AsyncClient(timeout=30) as http,
        ):
            started = time.monotonic()
            parked = await _park_all(http, replicas, keys[0], receiver)
            racing: list[int] = await _bounded(
                [_create(http, replicas[n % 3].url, headers, receiver) for n in range(RACING_PARKS)]
            )
            park_seconds = time.monotonic() - started
            seen = Seen()
            jobs = _jobs(Storm(http, headers, seen), parked, racing)
            half = len(jobs) // 2
            await _bounded([job(replicas) for job in jobs[:half]])
            await asyncio.to_thread(replicas[1].kill)
            survivors = [r for r in replicas if r is not replicas[1]]
            await _bounded([job(survivors) for job in jobs[half:]])
            await asyncio.to_thread(replicas[1].start)
            orders = {
                p["id"]: _order(n) for n, p in enumerate(parked) if n >= WEBHOOK_WAITS + TIMER_WAITS
            }
            orders |= {eid: f"racing-{eid}" for eid in racing}
            ids = [p["id"] for p in parked] + racing
            await _check(http, replicas, headers, ids, orders, seen, receiver, park_seconds)
    finally:
        for replica in replicas:
            await asyncio.to_thread(replica.kill)


async def _announced(receiver: Receiver, ids: list[int]) -> dict[int, set[str]]:
    """The webhook-ids of the callbacks per execution, once each execution has one (or 30 s
    passed)."""
    by_id: dict[int, set[str]] = {}
    for _ in range(300):
        by_id.clear()
        for got in list(receiver.received):
            event = json.loads(got.body)
            by_id.setdefault(event["data"]["executionId"], set()).add(got.headers["webhook-id"])
        if set(by_id) >= set(ids):
            break
        await asyncio.sleep(0.1)
    return by_id


async def _stored_events(
    http: httpx.AsyncClient, base: str, headers: dict[str, str]
) -> dict[str, list[dict[str, Any]]]:
    """The events the gateways kept, by provider id."""
    stored: dict[str, list[dict[str, Any]]] = {}
    params: dict[str, Any] = {"source": SOURCE, "limit": 250}
    while True:
        page = (await http.get(f"{base}/api/v1/events", params=params, headers=headers)).json()
        for event in page["data"]:
            stored.setdefault(event["eventId"], []).append(event)
        if not page["nextCursor"]:
            return stored
        params["cursor"] = page["nextCursor"]


def _check_events(
    seen: Seen,
    stored: dict[str, list[dict[str, Any]]],
    waits: dict[int, dict[str, Any]],
    orders: dict[int, str],
) -> Counter[str]:
    """Each event processed once whichever replicas its copies reached, its matches as many as
    it answered (plus one applied at park), every one of them a wait for its order; figures."""
    named: dict[str, list[int]] = {}
    for eid, wait in waits.items():
        if wait["resumedBy"] == "event":
            payload = wait["payload"]
            assert payload["body"]["order"]["id"] == orders[eid], (eid, payload)
            named.setdefault(payload["eventId"], []).append(eid)
    figures: Counter[str] = Counter()
    assert set(named) <= set(seen.answers), "resumed by an event nobody sent"
    for event_id, answers in seen.answers.items():
        firsts = [a for a in answers if not a.get("duplicate")]
        assert len(firsts) == 1, (event_id, answers)  # deduplicated across replicas
        originals = [e for e in stored[event_id] if e["status"] != "duplicate"]
        assert len(originals) == 1, stored[event_id]
        assert all(e["matched"] == 0 for e in stored[event_id] if e["status"] == "duplicate")
        resumed = named.get(event_id, [])
        at_park = [eid for eid in resumed if eid in seen.applied_at_park]
        assert originals[0]["matched"] == len(resumed), (event_id, originals, resumed)
        assert firsts[0]["matched"] + len(at_park) == len(resumed), (event_id, answers, resumed)
        figures["deliveries"] += len(answers)
        figures["duplicates"] += len(answers) - 1
        figures["fanned out"] += len(resumed) == 2
        figures["applied at park"] += len(at_park)
    return figures


async def _check(
    http: httpx.AsyncClient,
    replicas: list[GatewayProcess],
    headers: dict[str, str],
    ids: list[int],
    orders: dict[int, str],
    seen: Seen,
    receiver: Receiver,
    park_seconds: float,
) -> None:
    assert set(seen.codes) <= {200, 409}, seen.codes
    by_id = await _announced(receiver, ids)

    async def waits_of(eid: int) -> list[dict[str, Any]]:
        url = f"{random.choice(replicas).url}/api/v1/executions/{eid}"
        body = (await http.get(url, params={"includeData": "true"}, headers=headers)).json()
        waits: list[dict[str, Any]] = body["data"]["waits"]
        return waits

    all_waits = dict(zip(ids, await _bounded([waits_of(eid) for eid in ids]), strict=True))
    resumed_by = Counter(w[0]["resumedBy"] for w in all_waits.values())
    once = all(len(w) == 1 and w[0]["resumedAt"] for w in all_waits.values())
    lost = [eid for eid in seen.acknowledged if all_waits[eid][0]["resumedBy"] != "webhook"]
    stored = await _stored_events(http, replicas[0].url, headers)
    figures = _check_events(seen, stored, {e: w[0] for e, w in all_waits.items()}, orders)
    print(
        f"\nreplicas: parked {len(ids)} in {park_seconds:.1f} s; "
        f"resume calls {seen.codes.total()}: {seen.codes[200]} accepted, "
        f"{seen.codes[409]} refused; events {len(seen.answers)} in {figures['deliveries']} "
        f"deliveries ({figures['duplicates']} duplicates), {figures['fanned out']} fanned out "
        f"to two waits, {figures['applied at park']} applied at a racing park; "
        f"resumed by {dict(resumed_by)}; kills survived 1; callbacks received "
        f"{len(receiver.received)} for {len(by_id)} executions; lost {len(lost)}"
    )
    assert once, "every execution resumed exactly once"
    assert not lost, f"acknowledged resumes lost: {sorted(lost)[:10]}"
    assert seen.codes[200] == resumed_by["webhook"]
    assert sum(resumed_by.values()) == len(ids)
    event_only = [e for e, w in all_waits.items() if e in orders and not w[0]["webhook"]]
    assert all(all_waits[e][0]["resumedBy"] == "event" for e in event_only)
    assert figures["fanned out"] > 0
    assert set(by_id) == set(ids), "every resume announced to the engine"
    assert all(len(v) == 1 for v in by_id.values()), "one stable webhook-id per execution"
