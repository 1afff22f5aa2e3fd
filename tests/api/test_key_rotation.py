"""Secret key rotation end to end: add a key, old URLs live on; remove the old key, they die."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from gateway.clock import ManualClock
from gateway.config import Secret, Settings
from tests.conftest import running_gateway

OLD, NEW = Secret("old-signing-key-" + "o" * 32), Secret("new-signing-key-" + "n" * 32)


@asynccontextmanager
async def gateway(
    settings: Settings, clock: ManualClock, *keys: Secret
) -> AsyncIterator[httpx.AsyncClient]:
    async with running_gateway(dataclasses.replace(settings, secret_keys=keys), clock) as (
        _app,
        client,
    ):
        yield client


async def park_one(client: httpx.AsyncClient) -> str:
    execution = (await client.post("/api/v1/executions", json={"workflowId": "w"})).json()
    parked = await client.post(
        f"/api/v1/executions/{execution['id']}/wait", json={"webhook": {"httpMethod": "POST"}}
    )
    url: str = parked.json()["resumeUrl"]
    return url


async def test_rotation(settings: Settings, clock: ManualClock) -> None:
    async with gateway(settings, clock, OLD) as client:
        first, second = await park_one(client), await park_one(client)
    async with gateway(settings, clock, NEW, OLD) as client:  # new key first, old still listed
        assert (await client.post(first)).status_code == 200  # a URL signed with the old key
        fresh = await park_one(client)
        assert fresh.split("signature=")[1] != first.split("signature=")[1]
    async with gateway(settings, clock, NEW) as client:  # the old key removed
        gone = await client.post(second)
        assert (gone.status_code, gone.json()["error"]) == (401, "Invalid token")
        assert (await client.post(fresh)).status_code == 200
