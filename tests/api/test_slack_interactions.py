"""``POST /slack/interactions``: Slack's signed button presses record decisions (attacks first)."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import msgspec
import pytest

from gateway.clock import ManualClock
from gateway.config import Secret, Settings
from gateway.origins import origin_of
from tests.conftest import create, get, park, running_gateway
from tests.receiver import Receiver, running_receiver

SECRET = "slack-signing-secret"
APPROVERS = [
    {"id": "ada", "slack": "U_ADA"},
    {"id": "bob", "slack": "U_BOB"},
    {"id": "cy"},
]


@pytest.fixture
async def slack() -> AsyncIterator[Receiver]:
    async with running_receiver() as receiver:
        yield receiver


@pytest.fixture
async def gw(settings: Settings, clock: ManualClock, slack: Receiver) -> AsyncIterator[Any]:
    configured = dataclasses.replace(
        settings,
        callback_allowed_origins=(origin_of(slack.url),),
        slack_signing_secret=Secret(SECRET),
    )
    async with running_gateway(configured, clock) as (app, admin):
        made = await admin.post(
            "/api/v1/channels",
            json={"name": "slack", "type": "slack", "config": {"webhookUrl": slack.url}},
        )
        assert made.status_code == 201, made.text
        yield app, admin


def signed(body: bytes, timestamp: int, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256)
    return {
        "x-slack-request-timestamp": str(timestamp),
        "x-slack-signature": "v0=" + digest.hexdigest(),
        "content-type": "application/x-www-form-urlencoded",
    }


def press(user: str, value: str, response_url: str) -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": user},
        "actions": [{"action_id": "x", "value": value}],
        "response_url": response_url,
    }
    return urlencode({"payload": msgspec.json.encode(payload).decode()}).encode()


async def approval(admin: httpx.AsyncClient, slack: Receiver, **more: Any) -> tuple[int, str]:
    execution = await create(admin)
    spec = {"title": "Ship?", "approvers": APPROVERS, "channels": ["slack"], **more}
    wait = await park(admin, execution["id"], approval=spec)
    await slack.wait_for(1)
    message = msgspec.json.decode(slack.received[-1].body)
    values = {e["value"] for b in message["blocks"][2:] for e in b["elements"]}
    assert values == {f"{v}:{wait['id']}:1" for v in ("approve", "reject")}
    return wait["id"], f"approve:{wait['id']}:1"


async def test_a_button_press_by_an_approver_decides_and_updates_the_message(
    gw: Any, slack: Receiver, clock: ManualClock
) -> None:
    app, admin = gw
    eid, value = await approval(admin, slack, required=2)
    now = clock.now_ms() // 1000
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        body = press("U_ADA", value, slack.url)
        first = await c.post("/slack/interactions", content=body, headers=signed(body, now))
        assert first.status_code == 200, first.text
        assert first.json() == {"decided": True, "ended": None}
        again = await c.post("/slack/interactions", content=body, headers=signed(body, now))
        assert again.json() == {"decided": False, "ended": None}
        assert (await get(admin, eid))["status"] == "waiting"
        body = press("U_BOB", value, slack.url)
        second = await c.post("/slack/interactions", content=body, headers=signed(body, now))
        assert second.json() == {"decided": True, "ended": "approved"}
    assert (await get(admin, eid))["status"] == "running"
    updates = [msgspec.json.decode(r.body) for r in slack.received[1:]]
    assert updates[0]["response_type"] == "ephemeral"
    assert updates[-1]["replace_original"] is True
    assert "approved" in updates[-1]["text"]
    shown = await admin.get(f"/api/v1/executions/{eid}", params={"includeData": "true"})
    decisions = shown.json()["data"]["waits"][0]["payload"]["decisions"]
    assert [(d["approver"], d["via"]) for d in decisions] == [("ada", "slack"), ("bob", "slack")]


async def test_forged_stale_malformed_unknown_and_closed_presses_are_refused(
    gw: Any, slack: Receiver, clock: ManualClock
) -> None:
    app, admin = gw
    eid, value = await approval(admin, slack)
    now = clock.now_ms() // 1000
    good = press("U_ADA", value, slack.url)
    cases = [
        (good, signed(good, now, "wrong-secret"), 401, "signature"),
        (good, signed(good, now - 301), 401, "signature"),
        (good, {}, 401, "signature"),
        (b"nothing=here", signed(b"nothing=here", now), 400, "payload"),
        (b"payload=%7B", signed(b"payload=%7B", now), 400, "Slack interaction"),
        (press("U_ADA", "approve:x:1", slack.url), None, 400, "value"),
        (press("U_EVE", value, slack.url), None, 403, "not one of the approvers"),
        (press("U_ADA", f"approve:{eid}:2", slack.url), None, 409, "no longer open"),
        (press("U_ADA", f"approve:{eid + 99}:1", slack.url), None, 409, "no longer open"),
        (b"payload=" + b"x" * 70_000, None, 413, ""),
    ]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        for body, headers, status, names in cases:
            sent = headers if headers is not None else signed(body, now)
            answer = await c.post("/slack/interactions", content=body, headers=sent)
            assert answer.status_code == status, (body[:60], answer.text)
            assert names in answer.text
    assert (await get(admin, eid))["status"] == "waiting"
    assert len(slack.received) == 1


async def test_without_a_signing_secret_the_route_is_not_there(
    settings: Settings, clock: ManualClock
) -> None:
    async with running_gateway(settings, clock) as (app, _):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            answer = await c.post("/slack/interactions", content=b"payload=%7B%7D")
    assert answer.status_code == 404
    assert "WAITGATE_SLACK_SIGNING_SECRET" in answer.json()["message"]


async def test_forged_presses_are_limited_per_address_and_a_signed_one_is_not(
    gw: Any, slack: Receiver, clock: ManualClock
) -> None:
    app, admin = gw
    _, value = await approval(admin, slack)
    now = clock.now_ms() // 1000
    good = press("U_ADA", value, slack.url)
    forged = signed(good, now, "wrong-secret")
    budget = app.state.services.settings.rate_limit_bad_signatures
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        codes = [
            (await c.post("/slack/interactions", content=good, headers=forged)).status_code
            for _ in range(budget + 1)
        ]
        assert codes == [401] * budget + [429]
        kept = await c.post("/slack/interactions", content=good, headers=signed(good, now))
    assert kept.status_code == 200, kept.text  # a correctly signed press is never refused
