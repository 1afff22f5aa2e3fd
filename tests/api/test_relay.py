"""The callback relay every engine adapter shares: verify, deduplicate, dispatch, answer.

The attacks first (forged, tampered, stale, replayed, oversized, malformed), then the
conflict paths (a concurrent duplicate, an adapter that fails and is retried, a relay that
restarts), then the whole loop with a real gateway delivering over a socket.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.clock import ManualClock
from gateway.config import Secret, Settings
from gateway.delivery import sign
from gateway.integrations.relay import Callback, handle_callback, relay_app
from gateway.integrations.seen_ids import MemorySeenIds, SqliteSeenIds
from gateway.origins import origin_of
from tests.conftest import create, park, running_gateway
from tests.receiver import serving

SECRET = "whsec_" + base64.b64encode(b"relay-tests-callback-secret-32-b").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"relay-tests-old-callback-secret!").decode()
NOW = 1_800_000_000.0


class RecordingAdapter:
    """An engine that records what it was told; ``failures`` makes the next calls raise."""

    def __init__(self) -> None:
        self.resumed_calls: list[Callback] = []
        self.canceled_calls: list[Callback] = []
        self.failures = 0
        self.gate: asyncio.Event | None = None

    async def resumed(self, callback: Callback) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise RuntimeError("engine unavailable")
        self.resumed_calls.append(callback)

    async def canceled(self, callback: Callback) -> None:
        self.canceled_calls.append(callback)


def event(kind: str = "execution.resumed", **data: Any) -> dict[str, Any]:
    fields = {
        "executionId": 7,
        "workflowId": "wf",
        "projectId": None,
        "customData": {"temporal_workflowId": "order-1"},
        "resumedBy": "webhook",
        "wait": {"seq": 1},
        "payload": {"body": {"ok": True}},
    }
    return {"type": kind, "timestamp": "2027-01-15T08:00:00.000Z", "data": fields | data}


def signed(
    body: bytes, *, message_id: str = "msg_1", secret: str = SECRET, at: float = NOW
) -> dict[str, str]:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    stamp = int(at)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(key, message_id, stamp, body),
        "content-type": "application/json",
    }


async def call(
    adapter: RecordingAdapter,
    body: bytes,
    headers: dict[str, str],
    seen: MemorySeenIds | SqliteSeenIds | None = None,
    secrets: tuple[str, ...] = (SECRET,),
) -> tuple[int, dict[str, Any]]:
    return await handle_callback(
        adapter, secrets, seen or MemorySeenIds(), headers, body, now=lambda: NOW
    )


async def test_forged_tampered_stale_and_headerless_callbacks_reach_no_engine() -> None:
    adapter = RecordingAdapter()
    body = json.dumps(event()).encode()
    forged = signed(body, secret=OLD_SECRET)
    tampered_body = body.replace(b"order-1", b"order-2")
    attempts = {
        "forged": (body, forged),
        "tampered": (tampered_body, signed(body)),
        "stale": (body, signed(body, at=NOW - 301)),
        "future": (body, signed(body, at=NOW + 301)),
        "id swapped": (body, signed(body) | {"webhook-id": "msg_2"}),
        "no signature": (body, {k: v for k, v in signed(body).items() if k != "webhook-signature"}),
        "no headers": (body, {}),
        "v2 only": (body, signed(body) | {"webhook-signature": "v2,abc"}),
    }
    for name, (sent, headers) in attempts.items():
        status, answer = await call(adapter, sent, headers)
        assert status == 401, name
        assert answer["code"] == 401
        assert "signature" in answer["message"]
    assert adapter.resumed_calls == []


async def test_malformed_events_are_400_naming_the_problem() -> None:
    adapter = RecordingAdapter()
    cases = {
        b"not json": "not JSON",
        b"[]": "'data' object",
        json.dumps({"type": "execution.exploded", "data": {}}).encode(): "unknown callback type",
        json.dumps(event(executionId="7")).encode(): "executionId",
        json.dumps(event(customData={"k": 1})).encode(): "customData",
    }
    for body, named in cases.items():
        status, answer = await call(adapter, body, signed(body))
        assert status == 400, body
        assert named in answer["message"]
    assert adapter.resumed_calls == []


async def test_a_replayed_callback_reaches_the_engine_once() -> None:
    adapter = RecordingAdapter()
    seen = MemorySeenIds()
    body = json.dumps(event()).encode()
    first = await call(adapter, body, signed(body), seen)
    again = await call(adapter, body, signed(body), seen)
    assert first == (200, {"status": "handled", "webhookId": "msg_1"})
    assert again == (200, {"status": "duplicate", "webhookId": "msg_1"})
    (got,) = adapter.resumed_calls
    assert got.execution_id == 7
    assert got.custom_data == {"temporal_workflowId": "order-1"}
    assert got.payload == {"body": {"ok": True}}
    assert got.wait_seq == 1
    assert not got.timed_out


async def test_a_concurrent_duplicate_is_409_and_the_engine_runs_once() -> None:
    adapter = RecordingAdapter()
    adapter.gate = asyncio.Event()
    seen = MemorySeenIds()
    body = json.dumps(event()).encode()
    first = asyncio.create_task(call(adapter, body, signed(body), seen))
    await asyncio.sleep(0.01)
    status, answer = await call(adapter, body, signed(body), seen)
    assert status == 409
    assert "being handled" in answer["message"]
    adapter.gate.set()
    assert (await first)[0] == 200
    assert len(adapter.resumed_calls) == 1


async def test_an_engine_failure_is_503_and_the_retry_runs_it() -> None:
    adapter = RecordingAdapter()
    adapter.failures = 1
    seen = MemorySeenIds()
    body = json.dumps(event()).encode()
    status, answer = await call(adapter, body, signed(body), seen)
    assert status == 503
    assert answer["hint"] == "waitgate retries the delivery"
    assert "engine unavailable" not in json.dumps(answer)  # no engine internals leak
    assert (await call(adapter, body, signed(body), seen))[0] == 200
    assert len(adapter.resumed_calls) == 1


async def test_canceled_timeout_and_retry_events() -> None:
    adapter = RecordingAdapter()
    seen = MemorySeenIds()
    canceled = json.dumps(event("execution.canceled", resumedBy=None, payload=None)).encode()
    timed_out = json.dumps(event(resumedBy="timeout", payload=None)).encode()
    retry = json.dumps(event("execution.retry")).encode()
    assert (await call(adapter, canceled, signed(canceled, message_id="a"), seen))[0] == 200
    assert (await call(adapter, timed_out, signed(timed_out, message_id="b"), seen))[0] == 200
    status, answer = await call(adapter, retry, signed(retry, message_id="c"), seen)
    assert (status, answer["status"]) == (200, "ignored")
    assert [c.id for c in adapter.canceled_calls] == ["a"]
    (late,) = adapter.resumed_calls
    assert late.timed_out
    assert late.payload is None


async def test_any_configured_secret_verifies_during_a_rotation() -> None:
    adapter = RecordingAdapter()
    body = json.dumps(event()).encode()
    headers = signed(body, secret=OLD_SECRET)
    status, _ = await call(adapter, body, headers, secrets=(SECRET, OLD_SECRET))
    assert status == 200


async def test_sqlite_ids_survive_a_restart_and_a_dead_relays_claim_expires(
    tmp_path: Path,
) -> None:
    path = tmp_path / "relay.db"
    adapter = RecordingAdapter()
    body = json.dumps(event()).encode()
    first = SqliteSeenIds(path)
    assert (await call(adapter, body, signed(body), first))[0] == 200
    assert await first.claim("msg_crashed", NOW) == "new"  # a relay dies while handling it
    first.close()

    second = SqliteSeenIds(path, lease_seconds=60)
    assert (await call(adapter, body, signed(body), second))[1]["status"] == "duplicate"
    assert await second.claim("msg_crashed", NOW + 30) == "busy"
    assert await second.claim("msg_crashed", NOW + 61) == "new"
    second.close()
    assert len(adapter.resumed_calls) == 1
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM relay_seen WHERE state = 'done'").fetchone() == (1,)


@pytest.fixture
async def relay_url(clock: ManualClock) -> AsyncIterator[tuple[str, RecordingAdapter]]:
    """A relay on a loopback socket whose time is the gateway's (the manual clock)."""
    adapter = RecordingAdapter()
    app = relay_app(adapter, (SECRET,), max_body_bytes=64 * 1024, now=lambda: clock.now_ms() / 1000)
    async with serving(app, lifespan="on") as origin:
        yield f"{origin}/callbacks", adapter


async def test_over_a_socket_oversized_bodies_are_413_and_health_answers(
    relay_url: tuple[str, RecordingAdapter],
) -> None:
    url, adapter = relay_url
    async with httpx.AsyncClient() as http:
        huge = b"x" * (64 * 1024 + 1)
        answer = await http.post(url, content=huge, headers=signed(huge))
        assert answer.status_code == 413
        assert (await http.get(url.replace("/callbacks", "/healthz"))).json() == {"status": "ok"}
        assert (await http.get(url)).status_code == 405
    assert adapter.resumed_calls == []


async def test_a_gateway_resume_reaches_the_engine_once_through_the_relay(
    relay_url: tuple[str, RecordingAdapter], settings: Settings, clock: ManualClock
) -> None:
    url, adapter = relay_url
    relayed = dataclasses.replace(
        settings, callback_secret=Secret(SECRET), callback_allowed_origins=(origin_of(url),)
    )
    async with running_gateway(relayed, clock) as (_, client):
        execution = await create(client, callbackUrl=url, customData={"celery_task": "t"})
        parked = await park(client, execution["id"], webhook={"httpMethod": "POST"})
        assert (await client.post(parked["resumeUrl"], json={"go": 1})).status_code == 200
        for _ in range(250):
            if adapter.resumed_calls:
                break
            await asyncio.sleep(0.02)
        (got,) = adapter.resumed_calls
        assert got.payload["body"] == {"go": 1}
        assert got.custom_data == {"celery_task": "t"}
        delivery_id = got.id
        # The relay has answered; the gateway records the attempt just after (redelivering a
        # delivery still in flight is a 409), so wait for the record first.
        for _ in range(250):
            found = (await client.get(f"/api/v1/executions/{execution['id']}/deliveries")).json()
            if found["data"][0]["status"] == "delivered":
                break
            await asyncio.sleep(0.02)
        redelivered = await client.post(f"/api/v1/deliveries/{delivery_id}/redeliver")
        assert redelivered.status_code in (200, 202)
        for _ in range(250):
            found = (await client.get(f"/api/v1/executions/{execution['id']}/deliveries")).json()
            attempts = found["data"][0]["attempts"]
            if len(attempts) == 2:
                break
            await asyncio.sleep(0.02)
        assert [a["statusCode"] for a in attempts] == [200, 200]
        assert len(adapter.resumed_calls) == 1  # the redelivery was a duplicate


def test_the_relay_command_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WAITGATE_CALLBACK_SECRET", raising=False)
    runner = CliRunner()
    no_secret = runner.invoke(main, ["relay", "--engine", "celery"])
    assert no_secret.exit_code != 0
    assert "WAITGATE_CALLBACK_SECRET" in no_secret.output
    unknown = runner.invoke(main, ["relay", "--engine", "dagster"])
    assert unknown.exit_code != 0
    assert "dagster" in unknown.output
