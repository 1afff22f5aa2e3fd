"""Rate limits on failed signature checks and on the API; X-Forwarded-For from trusted proxies."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gateway.clock import ManualClock
from gateway.config import Settings
from tests.conftest import create, park, running_gateway


@pytest.fixture
async def limited(
    settings: Settings, clock: ManualClock
) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    strict = dataclasses.replace(
        settings,
        rate_limit_bad_signatures=3,
        rate_limit_bad_signatures_per_execution=5,
        trusted_proxies=("127.0.0.1/32",),
    )
    async with running_gateway(strict, clock) as (app, client):
        yield app, client


def forged(url: str) -> str:
    return url.replace("signature=", "signature=9")


async def test_failed_signatures_are_limited_per_address(
    limited: tuple[Starlette, httpx.AsyncClient], clock: ManualClock
) -> None:
    _, client = limited
    execution = await create(client)
    url = (await park(client, execution["id"], webhook={"httpMethod": "POST"}))["resumeUrl"]
    prober = {"X-Forwarded-For": "203.0.113.7"}
    codes = [(await client.post(forged(url), headers=prober)).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    blocked = await client.post(forged(url), headers=prober)
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) >= 1
    assert blocked.json()["message"] == "Too many requests; try again later"
    # another address is not blocked, and the wait was never used up
    assert (await client.post(url, headers={"X-Forwarded-For": "198.51.100.1"})).status_code == 200
    clock.advance(60_000)
    assert (await client.post(forged(url), headers=prober)).status_code == 401


async def test_failed_signatures_are_limited_per_execution_across_addresses(
    limited: tuple[Starlette, httpx.AsyncClient],
) -> None:
    _, client = limited
    execution = await create(client)
    url = (await park(client, execution["id"], webhook={"httpMethod": "POST"}))["resumeUrl"]
    codes = [
        (await client.post(forged(url), headers={"X-Forwarded-For": f"203.0.113.{n}"})).status_code
        for n in range(7)
    ]
    assert codes == [401] * 5 + [429] * 2


async def test_api_limit(settings: Settings, clock: ManualClock) -> None:
    async with running_gateway(dataclasses.replace(settings, rate_limit_api=2), clock) as (
        _app,
        client,
    ):
        codes = [(await client.get("/api/v1/executions")).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        assert (await client.get("/healthz")).status_code == 200  # only /api/ is limited
        clock.advance(30_000)
        assert (await client.get("/api/v1/executions")).status_code == 200


async def test_forwarded_for_is_believed_only_from_trusted_proxies(
    limited: tuple[Starlette, httpx.AsyncClient], anon: httpx.AsyncClient, client: Any
) -> None:
    _, trusting = limited
    execution = await create(trusting)
    url = (await park(trusting, execution["id"], webhook={"httpMethod": "POST"}))["resumeUrl"]
    await trusting.post(url, headers={"X-Forwarded-For": "198.51.100.9, 127.0.0.1"})
    trail = await trusting.get(f"/api/v1/executions/{execution['id']}/resume-attempts")
    assert trail.json()["data"][0]["ip"] == "198.51.100.9"
    # the default gateway trusts no proxy: the header is ignored
    other = await create(client)
    other_url = (await park(client, other["id"], webhook={"httpMethod": "POST"}))["resumeUrl"]
    await anon.post(other_url, headers={"X-Forwarded-For": "198.51.100.9"})
    plain = await client.get(f"/api/v1/executions/{other['id']}/resume-attempts")
    assert plain.json()["data"][0]["ip"] == "127.0.0.1"


async def test_one_client_address_for_the_access_log_audit_and_limits(
    limited: tuple[Starlette, httpx.AsyncClient], caplog: pytest.LogCaptureFixture
) -> None:
    _, client = limited
    execution = await create(client)
    url = (await park(client, execution["id"], webhook={"httpMethod": "POST"}))["resumeUrl"]
    forwarded = {"X-Forwarded-For": "192.0.2.1, 203.0.113.8", "X-Forwarded-Proto": "https"}
    caplog.set_level("INFO", logger="waitgate.access")
    assert (await client.post(url, headers=forwarded, json={"a": 1})).status_code == 200
    trail = await client.get(f"/api/v1/executions/{execution['id']}/resume-attempts")
    assert trail.json()["data"][0]["ip"] == "203.0.113.8"
    logged = [r for r in caplog.records if r.name == "waitgate.access"]
    resume_line = next(r for r in logged if "/webhook-waiting/" in r.getMessage())
    assert getattr(resume_line, "client", None) == "203.0.113.8"
    payload = (await client.get(f"/api/v1/executions/{execution['id']}?includeData=true")).json()
    assert payload["data"]["waits"][0]["payload"]["webhookUrl"].startswith("https://")
