"""Channels: CRUD, scopes and projects, masked secrets, allowed origins, approvals naming them."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.clock import ManualClock
from gateway.config import Settings
from tests.conftest import BASE_URL, create, make_key, running_gateway

ALLOWED = (
    "https://hooks.slack.com:443",
    "https://slack.com:443",
    "https://teams.example.com:443",
    "https://hooks.example.com:443",
    "smtp://mail.example.com:587",
)
SLACK_HOOK = "https://hooks.slack.com/services/T000/B000/hookSECRETvalue"
TEAMS_HOOK = "https://teams.example.com/workflows/abc?sig=TEAMSSECRET"
SECRETS = ("hookSECRETvalue", "TEAMSSECRET", "smtp-pass", "xoxb-bot-secret")
CHANNELS: list[dict[str, Any]] = [
    {
        "name": "ops-email",
        "type": "email",
        "config": {
            "smtpUrl": "smtp://bot:smtp-pass@mail.example.com:587",
            "from": "gate@example.com",
            "starttls": True,
        },
    },
    {"name": "ops-hook", "type": "webhook", "config": {"url": "https://hooks.example.com/in"}},
    {"name": "ops-slack", "type": "slack", "config": {"webhookUrl": SLACK_HOOK}},
    {
        "name": "ops-bot",
        "type": "slack",
        "config": {"botToken": "xoxb-bot-secret", "channel": "C123"},
    },
    {"name": "ops-teams", "type": "teams", "config": {"webhookUrl": TEAMS_HOOK}},
]


@pytest.fixture
async def gw(settings: Settings, clock: ManualClock) -> AsyncIterator[Any]:
    allowed = dataclasses.replace(settings, callback_allowed_origins=ALLOWED)
    async with running_gateway(allowed, clock) as (app, admin):
        yield app, admin


def keyed(app: Any, key: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers={"X-N8N-API-KEY": key})


def no_secret(response: httpx.Response) -> None:
    for secret in SECRETS:
        assert secret not in response.text


async def test_each_kind_is_created_read_listed_patched_and_deleted_with_secrets_masked(
    gw: Any,
) -> None:
    _, admin = gw
    for body in CHANNELS:
        made = await admin.post("/api/v1/channels", json=body)
        assert made.status_code == 201, made.text
        no_secret(made)
        assert made.json()["type"] == body["type"]
    shown = (await admin.get("/api/v1/channels/ops-email")).json()
    assert shown["config"]["smtpUrl"] == "smtp://bot:***@mail.example.com:587"
    assert shown["config"]["from"] == "gate@example.com"
    listed = await admin.get("/api/v1/channels", params={"limit": 2})
    no_secret(listed)
    assert [c["name"] for c in listed.json()["data"]] == ["ops-bot", "ops-email"]
    assert listed.json()["nextCursor"] == "ops-email"
    rest = await admin.get("/api/v1/channels", params={"cursor": "ops-email"})
    assert [c["name"] for c in rest.json()["data"]] == ["ops-hook", "ops-slack", "ops-teams"]
    patched = await admin.patch("/api/v1/channels/ops-email", json={"config": {"from": "x@y.z"}})
    assert patched.status_code == 200, patched.text
    no_secret(patched)
    assert patched.json()["config"]["from"] == "x@y.z"
    assert patched.json()["config"]["smtpUrl"].startswith("smtp://bot:***@")
    retyped = await admin.patch(
        "/api/v1/channels/ops-hook", json={"type": "teams", "config": {"webhookUrl": TEAMS_HOOK}}
    )
    assert retyped.json()["type"] == "teams"
    no_secret(retyped)
    gone = await admin.delete("/api/v1/channels/ops-slack")
    assert gone.status_code == 200
    no_secret(gone)
    assert (await admin.get("/api/v1/channels/ops-slack")).status_code == 404
    again = await admin.post("/api/v1/channels", json=CHANNELS[0])
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({**CHANNELS[1], "config": {"url": "https://evil.example.com/x"}}, "is not allowed"),
        ({**CHANNELS[1], "config": {"url": "http://169.254.169.254/x"}}, "is not allowed"),
        (
            {**CHANNELS[0], "config": {**CHANNELS[0]["config"], "smtpUrl": "smtp://u:p@10.0.0.1"}},
            "is not allowed",
        ),
        ({**CHANNELS[2], "config": {"webhookUrl": "https://hooks.slack.com:8443/x"}}, "allowed"),
        ({**CHANNELS[1], "config": {"url": "ftp://hooks.example.com/x"}}, "config.url"),
        ({**CHANNELS[1], "config": {"url": "https://u:p@hooks.example.com/x"}}, "credentials"),
        ({**CHANNELS[1], "config": {"url": "https://hooks.example.com", "x": 1}}, "config"),
        ({**CHANNELS[2], "config": {}}, "webhookUrl or config.botToken"),
        ({**CHANNELS[3], "config": {"botToken": "xoxb-1"}}, "config.channel"),
        ({**CHANNELS[0], "config": {"smtpUrl": "smtp://mail.example.com:587"}}, "from"),
        ({**CHANNELS[1], "name": "bad name"}, "channel name"),
        ({**CHANNELS[1], "name": "x" * 65}, "channel name"),
        ({**CHANNELS[1], "type": "pigeon"}, "type"),
        ({**CHANNELS[1], "config": {"url": "https://hooks.example.com/" + "a" * 3000}}, "config"),
    ],
)
async def test_invalid_channels_are_refused_naming_the_problem(
    gw: Any, body: dict[str, Any], names: str
) -> None:
    _, admin = gw
    refused = await admin.post("/api/v1/channels", json=body)
    assert refused.status_code == 400, refused.text
    assert names in refused.json()["message"]
    assert (await admin.get("/api/v1/channels")).json()["data"] == []


async def test_a_patch_to_a_refused_origin_changes_nothing(gw: Any) -> None:
    _, admin = gw
    await admin.post("/api/v1/channels", json=CHANNELS[1])
    refused = await admin.patch(
        "/api/v1/channels/ops-hook", json={"config": {"url": "https://evil.example.com/"}}
    )
    assert refused.status_code == 400
    shown = (await admin.get("/api/v1/channels/ops-hook")).json()
    assert shown["config"]["url"] == "https://hooks.example.com/in"


async def test_scopes_and_projects(gw: Any) -> None:
    app, admin = gw
    svc = app.state.services
    reader = await make_key(svc, "channel:read")
    other = await make_key(svc, "execution:read")
    alpha = await make_key(svc, "channel:read", "channel:write", "execution:write", project="a")
    beta = await make_key(svc, "channel:read", "channel:write", "execution:write", project="b")
    async with keyed(app, reader) as r, keyed(app, other) as o:
        assert (await r.post("/api/v1/channels", json=CHANNELS[1])).status_code == 403
        assert (await o.get("/api/v1/channels")).status_code == 403
    async with keyed(app, alpha) as a, keyed(app, beta) as b:
        assert (await a.post("/api/v1/channels", json=CHANNELS[1])).status_code == 201
        assert (await b.get("/api/v1/channels/ops-hook")).status_code == 404
        assert (await b.patch("/api/v1/channels/ops-hook", json={})).status_code == 404
        assert (await b.delete("/api/v1/channels/ops-hook")).status_code == 404
        assert (await b.get("/api/v1/channels")).json()["data"] == []
        assert (await b.post("/api/v1/channels", json=CHANNELS[1])).status_code == 409
        # an approval in project b cannot name project a's channel
        execution = await create(b)
        spec = {"title": "Go?", "approvers": [{"id": "x"}], "channels": ["ops-hook"]}
        path = f"/api/v1/executions/{execution['id']}/wait"
        refused = await b.post(path, json={"approval": spec})
        assert refused.status_code == 400
        assert '"ops-hook" does not exist' in refused.json()["message"]
        mine = await create(a)
        parked = await a.post(f"/api/v1/executions/{mine['id']}/wait", json={"approval": spec})
        assert parked.status_code == 200, parked.text
    assert [c["name"] for c in (await admin.get("/api/v1/channels")).json()["data"]] == ["ops-hook"]


async def test_an_approval_naming_an_unknown_channel_is_refused_and_nothing_is_parked(
    gw: Any,
) -> None:
    _, admin = gw
    execution = await create(admin)
    spec = {"title": "Go?", "approvers": [{"id": "x"}], "channels": ["nope"]}
    path = f"/api/v1/executions/{execution['id']}/wait"
    refused = await admin.post(path, json={"approval": spec})
    assert refused.status_code == 400
    assert '"nope" does not exist' in refused.json()["message"]
    shown = (await admin.get(f"/api/v1/executions/{execution['id']}")).json()
    assert shown["status"] == "running"
    for bad, rule in [
        ({"title": "Go?", "channels": ["ops-hook"]}, "needs approval.approvers"),
        ({"title": "Go?", "approvers": [{"id": "x"}], "channels": ["a", "a"]}, "distinct"),
        ({"title": "Go?", "approvers": [{"id": "x"}], "channels": ["no spaces"]}, "channels"),
    ]:
        answer = await admin.post(
            f"/api/v1/executions/{execution['id']}/wait", json={"approval": bad}
        )
        assert answer.status_code == 400, answer.text
        assert rule in answer.json()["message"]


async def test_patching_back_the_masked_config_keeps_the_secrets(gw: Any) -> None:
    app, admin = gw
    for body in CHANNELS:
        assert (await admin.post("/api/v1/channels", json=body)).status_code == 201
    store = app.state.services.store
    for body in CHANNELS:
        name = body["name"]
        shown = (await admin.get(f"/api/v1/channels/{name}")).json()["config"]
        echoed = await admin.patch(f"/api/v1/channels/{name}", json={"config": shown})
        assert echoed.status_code == 200, echoed.text
        kept = await store.get_channel(name)
        assert kept is not None
        assert kept.config == body["config"]  # what GET showed, sent back, is no secret


async def test_a_masked_secret_edited_around_is_refused(gw: Any) -> None:
    app, admin = gw
    await admin.post("/api/v1/channels", json=CHANNELS[0])
    edited = await admin.patch(
        "/api/v1/channels/ops-email",
        json={"config": {"smtpUrl": "smtp://other:***@mail.example.com:587"}},
    )
    assert edited.status_code == 400
    assert "smtpUrl" in edited.json()["message"]
    kept = await app.state.services.store.get_channel("ops-email")
    assert kept.config["smtpUrl"] == "smtp://bot:smtp-pass@mail.example.com:587"
