"""Three ``waitgate serve`` replicas on one PostgreSQL: exactly once, nothing lost, callbacks.

Parks executions with webhook and timer waits, fires duplicate resume calls at random replicas
while timers expire, SIGKILLs and restarts one replica in the middle, then checks from the
database (through the API) and the callback receiver. Prints the figures.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import secrets
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backends import truncate_postgres
from tests.process import GatewayProcess
from tests.receiver import Receiver, free_port, running_receiver

pytestmark = pytest.mark.acceptance
WEBHOOK_WAITS = 600
TIMER_WAITS = 400
CONCURRENCY = 32


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


async def _bounded(jobs: list[Any]) -> list[Any]:
    slots = asyncio.Semaphore(CONCURRENCY)

    async def run(job: Any) -> Any:
        async with slots:
            return await job

    return await asyncio.gather(*(run(j) for j in jobs))


async def _park_all(
    http: httpx.AsyncClient, replicas: list[GatewayProcess], key: str, receiver: Receiver
) -> list[dict[str, Any]]:
    headers = {"X-N8N-API-KEY": key}

    async def one(n: int) -> dict[str, Any]:
        deadline = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
        base = replicas[n % 3].url
        created = await http.post(
            f"{base}/api/v1/executions",
            json={"workflowId": "replicas", "callbackUrl": receiver.url},
            headers=headers,
        )
        wait = (
            {"webhook": {"httpMethod": "POST"}}
            if n < WEBHOOK_WAITS
            else {"waitTill": deadline, "webhook": {"httpMethod": "POST"}}
        )
        parked = await http.post(
            f"{base}/api/v1/executions/{created.json()['id']}/wait", json=wait, headers=headers
        )
        assert parked.status_code == 200, parked.text
        body: dict[str, Any] = parked.json()
        return body

    return await _bounded([one(n) for n in range(WEBHOOK_WAITS + TIMER_WAITS)])


async def test_three_replicas_resume_exactly_once(tmp_path: Path, postgres_url: str) -> None:
    await truncate_postgres(postgres_url)
    receiver_port = free_port()
    replicas = _replicas(tmp_path, postgres_url, receiver_port)
    await asyncio.gather(*(asyncio.to_thread(r.start) for r in replicas))  # start together
    try:
        keys = [k for r in replicas for k in r.admin_keys()]
        assert len(keys) == 1, "replicas starting together must print one admin key"
        async with (
            running_receiver(receiver_port) as receiver,
            httpx.AsyncClient(timeout=30) as http,
        ):
            started = time.monotonic()
            parked = await _park_all(http, replicas, keys[0], receiver)
            park_seconds = time.monotonic() - started
            # every execution gets two resume calls at random replicas, timers expire meanwhile
            calls = [_on(random.choice(replicas), p["resumeUrl"]) for p in parked for _ in range(2)]
            random.shuffle(calls)
            half = len(calls) // 2
            first = await _bounded(
                [http.post(url, json={"via": "webhook"}) for url in calls[:half]]
            )
            await asyncio.to_thread(replicas[1].kill)
            survivors = [r for r in replicas if r is not replicas[1]]
            rest = [_on(random.choice(survivors), url) for url in calls[half:]]
            second = await _bounded([http.post(url, json={"via": "webhook"}) for url in rest])
            await asyncio.to_thread(replicas[1].start)
            codes = Counter(r.status_code for r in first + second)
            acknowledged = {
                int(r.url.path.rsplit("/", 1)[1]) for r in first + second if r.status_code == 200
            }
            await _check(
                http, replicas, keys[0], parked, acknowledged, receiver, codes, park_seconds
            )
    finally:
        for replica in replicas:
            await asyncio.to_thread(replica.kill)


async def _check(
    http: httpx.AsyncClient,
    replicas: list[GatewayProcess],
    key: str,
    parked: list[dict[str, Any]],
    acknowledged: set[int],
    receiver: Receiver,
    codes: Counter[int],
    park_seconds: float,
) -> None:
    headers = {"X-N8N-API-KEY": key}
    assert set(codes) <= {200, 409}, codes
    ids = {p["id"] for p in parked}
    await receiver.wait_for(len(ids), within=30)
    by_id: dict[int, set[str]] = {}
    for got in receiver.received:
        event = json.loads(got.body)
        by_id.setdefault(event["data"]["executionId"], set()).add(got.headers["webhook-id"])
    for _ in range(300):
        if set(by_id) >= ids:
            break
        await asyncio.sleep(0.1)
        for got in receiver.received:
            event = json.loads(got.body)
            by_id.setdefault(event["data"]["executionId"], set()).add(got.headers["webhook-id"])

    async def waits_of(eid: int) -> list[dict[str, Any]]:
        url = f"{random.choice(replicas).url}/api/v1/executions/{eid}"
        body = (await http.get(url, params={"includeData": "true"}, headers=headers)).json()
        waits: list[dict[str, Any]] = body["data"]["waits"]
        return waits

    all_waits = await _bounded([waits_of(eid) for eid in sorted(ids)])
    resumed_by = Counter(w[0]["resumedBy"] for w in all_waits)
    once = all(len(w) == 1 and w[0]["resumedAt"] for w in all_waits)
    lost = [
        eid
        for eid, w in zip(sorted(ids), all_waits, strict=True)
        if eid in acknowledged and w[0]["resumedBy"] != "webhook"
    ]
    print(
        f"\nreplicas: parked {len(ids)} in {park_seconds:.1f} s; "
        f"resume calls {sum(codes.values())}: {codes[200]} accepted, "
        f"{codes[409]} refused; resumed by {dict(resumed_by)}; "
        f"kills survived 1; callbacks received {len(receiver.received)} for {len(by_id)} "
        f"executions; lost {len(lost)}"
    )
    assert once, "every execution resumed exactly once"
    assert not lost, f"acknowledged resumes lost: {lost[:10]}"
    assert codes[200] == resumed_by["webhook"]
    assert sum(resumed_by.values()) == len(ids)
    assert set(by_id) == ids, "every resume announced to the engine"
    assert all(len(v) == 1 for v in by_id.values()), "one stable webhook-id per execution"
