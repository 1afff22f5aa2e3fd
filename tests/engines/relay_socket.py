"""The relay served on a loopback socket in the test's own event loop, and callbacks to it.

The adapter runs where the engine's objects live (the test's loop); the gateway, in its own
thread (``tests.engines.harness``), delivers callbacks to ``RelaySocket.url`` over a real
socket. The relay reads the time from the gateway's manual clock, so a callback sent after
``advance`` is not refused as stale.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from gateway.delivery import sign
from gateway.integrations.relay import Adapter, AdapterFactory, relay_app
from gateway.integrations.seen_ids import MemorySeenIds
from tests.engines.harness import GatewayThread
from tests.receiver import free_port, serving


@dataclass
class RelaySocket:
    """A served relay: ``url`` is the callbackUrl to give waitgate."""

    url: str
    origin: str


def relay_origin() -> tuple[int, str]:
    """A free loopback port and its origin (for the gateway's allowed callback origins)."""
    port = free_port()
    return port, f"http://127.0.0.1:{port}"


@asynccontextmanager
async def running_relay(
    adapter: Adapter | AdapterFactory, gateway: GatewayThread, port: int
) -> AsyncIterator[RelaySocket]:
    """Serve ``relay_app(adapter)`` with the gateway's callback secret on ``port``."""
    app = relay_app(
        adapter,
        [gateway.callback_secret],
        seen=MemorySeenIds(),
        now=lambda: gateway.clock.now_ms() / 1000,
    )
    async with serving(app, port, lifespan="on") as origin:
        yield RelaySocket(url=f"{origin}/callbacks", origin=origin)


def signed_headers(secret: str, message_id: str, body: bytes, at: float) -> dict[str, str]:
    """Standard Webhooks headers for ``body`` signed with ``secret`` at ``at`` (seconds)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    stamp = int(at)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(key, message_id, stamp, body),
        "content-type": "application/json",
    }


async def poll(check: Any, within: float = 20.0, what: str = "condition") -> Any:
    """Await ``check()`` (a coroutine function) until it returns something truthy."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {within} s")


async def deliveries(gateway: GatewayThread, execution_id: int) -> list[dict[str, Any]]:
    """The execution's callback deliveries, as the API lists them."""
    async with httpx.AsyncClient(
        base_url=f"{gateway.url}/api/v1", headers={"X-N8N-API-KEY": gateway.admin_key}
    ) as api:
        answer = await api.get(f"/executions/{execution_id}/deliveries")
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()["data"]
        return found


async def post_at_once(
    relay: RelaySocket, gateway: GatewayThread, body: bytes, *message_ids: str
) -> list[int]:
    """POST ``body`` to the relay under each of ``message_ids`` at the same time, signed with
    the gateway's secret at its time; the status codes of the answers."""
    now = gateway.clock.now_ms() / 1000
    async with httpx.AsyncClient() as sender:
        answers = await asyncio.gather(
            *(
                sender.post(
                    relay.url,
                    content=body,
                    headers=signed_headers(gateway.callback_secret, message_id, body, now),
                )
                for message_id in message_ids
            )
        )
    return [answer.status_code for answer in answers]
