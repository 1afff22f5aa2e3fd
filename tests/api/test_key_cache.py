"""API keys are cached for two seconds: a revoked key stops working within that time."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from gateway.clock import ManualClock
from gateway.services import Services
from tests.conftest import BASE_URL, make_key


async def test_revocation_takes_effect_when_the_cache_expires(
    app: Starlette, svc: Services, clock: ManualClock
) -> None:
    key = await make_key(svc)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE_URL, headers={"X-N8N-API-KEY": key}
    ) as client:
        assert (await client.get("/api/v1/executions")).status_code == 200
        (record,) = [k for k in await svc.store.list_api_keys() if k.prefix == key[:10]]
        assert await svc.store.revoke_api_key(record.id, clock.now_ms())
        assert (await client.get("/api/v1/executions")).status_code == 200  # still cached
        clock.advance(2001)
        revoked = await client.get("/api/v1/executions")
        assert (revoked.status_code, revoked.json()) == (
            401,
            {"message": "Unauthorized", "code": 401},
        )
