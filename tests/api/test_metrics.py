"""``/metrics``: counters move with what happens; gauges read the database at most once a
second, however often it is scraped."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.clock import ManualClock
from gateway.errors import StoreUnavailable
from gateway.services import Services
from tests.conftest import create, fire_timers, park


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def test_metrics_follow_parks_resumes_timers_and_refusals(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, svc: Services, clock: ManualClock
) -> None:
    before = await scrape(client)
    hook = await create(client)
    parked = await park(client, hook["id"], webhook={"httpMethod": "POST"})
    timer = await create(client)
    await park(client, timer["id"], waitTill="2026-01-01T00:00:01Z")
    late = await create(client)
    await park(client, late["id"], waitTill="2026-01-01T00:00:02Z")
    await anon.post(parked["resumeUrl"].replace("signature=", "signature=0"))
    await anon.post(parked["resumeUrl"])
    clock.advance(1250)
    await fire_timers(svc, timer["id"])
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("waitgate_parks_total") == 3
    assert delta("waitgate_resumes_total", by="webhook") == 1
    assert delta("waitgate_resumes_total", by="timeout") == 1
    assert delta("waitgate_signature_failures_total") == 1
    assert delta("waitgate_resume_seconds_count") == 1
    assert delta("waitgate_timer_lateness_seconds_count") == 1
    assert delta("waitgate_timer_lateness_seconds_sum") == 0.25
    assert after[("waitgate_executions", (("status", "running"),))] == 2
    assert after[("waitgate_executions", (("status", "waiting"),))] == 1
    assert after[("waitgate_overdue_waits", ())] == 0
    clock.advance(5000)  # the third wait is now overdue until the scheduler catches up
    backlog = await scrape(client)
    assert backlog[("waitgate_overdue_waits", ())] in {0, 1}


async def test_a_scrape_flood_counts_the_database_once_a_second(
    client: httpx.AsyncClient, svc: Services, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``/metrics`` may be open to anyone: a flood of scrapes, at once or one after another,
    reads the database's counts once per second, not once per request."""
    counted: list[int] = []
    count_by_status = svc.store.count_by_status

    async def counting() -> dict[str, int]:
        counted.append(clock.now_ms())
        return await count_by_status()

    monkeypatch.setattr(svc.store, "count_by_status", counting)
    await create(client)
    flood = await asyncio.gather(*(scrape(client) for _ in range(20)))
    assert len(counted) == 1
    assert {s[("waitgate_executions", (("status", "running"),))] for s in flood} == {1}

    await create(client)
    clock.advance(999)
    stale = await scrape(client)
    assert stale[("waitgate_executions", (("status", "running"),))] == 1
    clock.advance(1)
    fresh = await scrape(client)
    assert fresh[("waitgate_executions", (("status", "running"),))] == 2
    assert len(counted) == 2


async def test_a_failed_count_is_503_and_tried_again(
    client: httpx.AsyncClient, svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    count_by_status = svc.store.count_by_status
    calls: list[str] = []

    async def unavailable_once() -> dict[str, int]:
        calls.append("count")
        if len(calls) == 1:
            raise StoreUnavailable("database unavailable: disk I/O error")
        return await count_by_status()

    monkeypatch.setattr(svc.store, "count_by_status", unavailable_once)
    refused = await client.get("/metrics")
    assert refused.status_code == 503
    assert refused.json()["message"]
    assert (await client.get("/metrics")).status_code == 200
    assert calls == ["count", "count"]
