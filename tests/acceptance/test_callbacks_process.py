"""Callbacks from a real process: at least once, with a stable id, across a SIGKILL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from gateway.origins import origin_of
from tests.process import GatewayProcess
from tests.receiver import running_receiver

pytestmark = pytest.mark.acceptance


async def test_a_delivery_cut_by_sigkill_is_sent_again_with_the_same_id(tmp_path: Path) -> None:
    async with running_receiver() as receiver:
        gateway = GatewayProcess(
            tmp_path,
            {
                "WAITGATE_CALLBACK_ALLOWED_ORIGINS": origin_of(receiver.url),
                "WAITGATE_CALLBACK_TIMEOUT": "1",
            },
        )
        await asyncio.to_thread(gateway.start)
        try:
            (key,) = gateway.admin_keys()
            async with httpx.AsyncClient(
                base_url=gateway.url, headers={"X-N8N-API-KEY": key}, timeout=10
            ) as client:
                created = await client.post(
                    "/api/v1/executions", json={"workflowId": "w", "callbackUrl": receiver.url}
                )
                eid = created.json()["id"]
                parked = await client.post(
                    f"/api/v1/executions/{eid}/wait", json={"webhook": {"httpMethod": "POST"}}
                )
                receiver.answering.clear()  # the engine hangs on the first delivery
                resumed = await client.post(parked.json()["resumeUrl"], json={"n": 1})
                assert resumed.status_code == 200
                await receiver.wait_for(1)
            await asyncio.to_thread(gateway.kill)  # mid-delivery: no answer was recorded
            receiver.answering.set()
            await asyncio.to_thread(gateway.start)
            await receiver.wait_for(2, within=15)
            first, again = receiver.received[0], receiver.received[1]
            assert first.headers["webhook-id"] == again.headers["webhook-id"]
            assert json.loads(again.body)["data"]["payload"]["body"] == {"n": 1}
            async with httpx.AsyncClient(
                base_url=gateway.url, headers={"X-N8N-API-KEY": key}, timeout=10
            ) as client:
                for _ in range(100):
                    deliveries = (await client.get(f"/api/v1/executions/{eid}/deliveries")).json()
                    if deliveries["data"][0]["status"] == "delivered":
                        break
                    await asyncio.sleep(0.05)
            (delivery,) = deliveries["data"]
            assert delivery["status"] == "delivered"
            assert delivery["id"] == first.headers["webhook-id"]
        finally:
            await asyncio.to_thread(gateway.kill)
