"""Notifications through channels, with real peers over sockets: an SMTP server (aiosmtpd), and
HTTP stand-ins for Slack, Teams and a webhook whose payloads are checked against the documented
shapes (Block Kit, Adaptive Cards, Standard Webhooks)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email
import email.policy
import re
import time
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from typing import Any

import httpx
import msgspec
import pytest
from aiosmtpd.controller import Controller
from standardwebhooks import Webhook

from gateway.clock import ManualClock
from gateway.config import Settings
from gateway.origins import origin_of
from tests.conftest import create, get, park, running_gateway
from tests.receiver import Receiver, free_port, running_receiver

APPROVERS = [
    {"id": "ada", "name": "Ada", "email": "ada@example.com"},
    {"id": "bob", "email": "bob@example.com"},
    {"id": "cy"},
]


class Inbox:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


@contextlib.contextmanager
def smtp_server(port: int) -> Iterator[Inbox]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


async def until(check: Any, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - the peers run in other threads and tasks
            await asyncio.sleep(0.01)


@dataclasses.dataclass
class Peers:
    smtp_port: int
    slack: Receiver
    teams: Receiver
    hook: Receiver


@pytest.fixture
async def peers() -> AsyncIterator[Peers]:
    async with (
        running_receiver() as slack,
        running_receiver() as teams,
        running_receiver() as hook,
    ):
        yield Peers(free_port(), slack, teams, hook)


@pytest.fixture
async def gw(settings: Settings, clock: ManualClock, peers: Peers) -> AsyncIterator[Any]:
    allowed = (
        f"smtp://127.0.0.1:{peers.smtp_port}",
        *(origin_of(r.url) for r in (peers.slack, peers.teams, peers.hook)),
    )
    configured = dataclasses.replace(
        settings,
        callback_allowed_origins=allowed,
        callback_backoff_base_seconds=1.0,
        callback_max_age_seconds=60.0,
    )
    async with running_gateway(configured, clock) as (app, admin):
        channels = [
            {
                "name": "mail",
                "type": "email",
                "config": {
                    "smtpUrl": f"smtp://127.0.0.1:{peers.smtp_port}",
                    "from": "gate@example.com",
                },
            },
            {"name": "slack", "type": "slack", "config": {"webhookUrl": peers.slack.url}},
            {"name": "teams", "type": "teams", "config": {"webhookUrl": peers.teams.url}},
            {"name": "hook", "type": "webhook", "config": {"url": peers.hook.url}},
        ]
        for channel in channels:
            made = await admin.post("/api/v1/channels", json=channel)
            assert made.status_code == 201, made.text
        yield app, admin


async def approval(admin: httpx.AsyncClient, *channels: str) -> dict[str, Any]:
    execution = await create(admin)
    spec = {"title": "Deploy 1.2?", "description": "To production.", "approvers": APPROVERS}
    return await park(admin, execution["id"], approval={**spec, "channels": list(channels)})


async def deliveries(admin: httpx.AsyncClient, eid: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await admin.get(f"/api/v1/executions/{eid}/deliveries")).json()[
        "data"
    ]
    return found


def link_in(text: str) -> str:
    found = re.search(r"http://127\.0\.0\.1:5678/approval/\S+", text)
    assert found is not None, text
    return found.group(0)


async def test_each_approver_with_an_email_gets_one_and_approves_through_its_link(
    gw: Any, peers: Peers
) -> None:
    app, admin = gw
    with smtp_server(peers.smtp_port) as inbox:
        wait = await approval(admin, "mail")
        await until(lambda: len(inbox.messages) == 2)
    by_to = {m["To"]: m for m in inbox.messages}
    assert set(by_to) == {"ada@example.com", "bob@example.com"}
    message = by_to["ada@example.com"]
    assert message["From"] == "gate@example.com"
    assert "Deploy 1.2?" in message["Subject"]
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    link = link_in(text.get_content())
    assert link == wait["approvalUrls"]["ada"]
    assert link.replace("&", "&amp;") in html.get_content()
    found = re.search(r"http://127\.0\.0\.1:5678/inbox\?\S+", text.get_content())
    assert found is not None  # every notification carries the approver's inbox too
    assert found.group(0) == wait["inboxUrls"]["ada"]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport) as browser:
        listed = await browser.get(found.group(0))
        assert listed.status_code == 200
        assert "Deploy 1.2?" in listed.text
        assert (await browser.get(link)).status_code == 200
        decided = await browser.post(link, data={"decision": "approve"})
        assert decided.status_code == 200, decided.text
    assert (await get(admin, wait["id"]))["status"] == "running"
    sent = await deliveries(admin, wait["id"])
    assert {(d["event"], d["channel"], d["status"]) for d in sent} == {
        ("approval.requested", "mail", "delivered")
    }
    assert {d["targetUrl"] for d in sent} == {"mailto:ada@example.com", "mailto:bob@example.com"}


async def test_smtp_down_then_up_delivers_after_a_retry_and_the_approval_stays_open(
    gw: Any, peers: Peers, clock: ManualClock
) -> None:
    app, admin = gw
    wait = await approval(admin, "mail")
    svc = app.state.services
    await svc.dispatcher.run_due()

    for _ in range(500):
        sent = await deliveries(admin, wait["id"])
        if all(d["attempts"] for d in sent):
            break
        await asyncio.sleep(0.01)
    assert len(sent) == 2
    assert all(d["status"] == "pending" and d["attempts"][0]["error"] for d in sent)
    assert (await get(admin, wait["id"]))["status"] == "waiting"
    with smtp_server(peers.smtp_port) as inbox:
        clock.advance(5_000)
        await svc.dispatcher.run_due()
        await until(lambda: len(inbox.messages) == 2)
    for _ in range(500):
        sent = await deliveries(admin, wait["id"])
        if all(d["status"] == "delivered" for d in sent):
            break
        await asyncio.sleep(0.01)
    assert [d["status"] for d in sent] == ["delivered", "delivered"]
    assert (await get(admin, wait["id"]))["status"] == "waiting"


def check_block_kit(message: dict[str, Any], links: dict[str, str]) -> None:
    """Slack's documented shape: text fallback, header/section/actions blocks, limits."""
    assert isinstance(message["text"], str)
    assert message["text"]
    blocks = message["blocks"]
    assert 1 <= len(blocks) <= 50
    kinds = [b["type"] for b in blocks]
    assert kinds[:2] == ["header", "section"]
    assert set(kinds[2:]) == {"actions"}
    assert blocks[0]["text"]["type"] == "plain_text"
    assert len(blocks[0]["text"]["text"]) <= 150
    section = blocks[1]["text"]
    assert section["type"] in {"mrkdwn", "plain_text"}
    assert 1 <= len(section["text"]) <= 3000
    buttons = [e for b in blocks[2:] for e in b["elements"]]
    assert all(len(b["elements"]) <= 25 for b in blocks[2:])
    action_ids = [b["action_id"] for b in buttons]
    assert len(set(action_ids)) == len(action_ids)
    for button in buttons:
        assert button["type"] == "button"
        assert button["text"]["type"] == "plain_text"
        assert 1 <= len(button["text"]["text"]) <= 75
        assert button["style"] in {"primary", "danger"}
        assert len(button["action_id"]) <= 255
        assert len(button["url"]) <= 3000
    assert {(b["action_id"], b["url"]) for b in buttons} == {
        (f"{verdict}:{who}", url) for who, url in links.items() for verdict in ("approve", "reject")
    }


def check_adaptive_card(message: dict[str, Any], links: dict[str, str]) -> None:
    """The Workflows/incoming-webhook envelope around an Adaptive Card with OpenUrl actions."""
    assert message["type"] == "message"
    (attachment,) = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    assert card["body"]
    assert all(b["type"] == "TextBlock" for b in card["body"])
    assert card["body"][0]["text"] == "Deploy 1.2?"
    assert all(a["type"] == "Action.OpenUrl" and a["title"] for a in card["actions"])
    assert {a["url"] for a in card["actions"]} == set(links.values())


async def test_slack_teams_and_a_signed_webhook_each_get_one_message_with_the_links(
    gw: Any, peers: Peers, clock: ManualClock
) -> None:
    app, admin = gw
    clock.advance(int(time.time() * 1000) - clock.now_ms())  # the verifier's tolerance is real
    wait = await approval(admin, "slack", "teams", "hook")
    links = wait["approvalUrls"]
    for peer in (peers.slack, peers.teams, peers.hook):
        await peer.wait_for(1)
    check_block_kit(msgspec.json.decode(peers.slack.received[0].body), links)
    check_adaptive_card(msgspec.json.decode(peers.teams.received[0].body), links)
    received = peers.hook.received[0]
    secret = app.state.services.settings.callback_secret
    event = Webhook(secret.reveal()).verify(received.body, received.headers)
    assert event["type"] == "approval.requested"
    assert event["data"]["approvalUrls"] == links
    assert event["data"]["title"] == "Deploy 1.2?"
    assert "webhook-signature" not in peers.slack.received[0].headers
    await asyncio.sleep(0.05)
    assert [len(p.received) for p in (peers.slack, peers.teams, peers.hook)] == [1, 1, 1]
    sent = await deliveries(admin, wait["id"])
    assert sorted(d["channel"] for d in sent) == ["hook", "slack", "teams"]
    for d in sent:
        assert peers.slack.url not in str(d)
        assert peers.teams.url not in str(d)


async def test_a_slack_answer_of_500_is_retried_and_nothing_is_lost(
    gw: Any, peers: Peers, clock: ManualClock
) -> None:
    app, admin = gw
    peers.slack.answers.append(500)
    wait = await approval(admin, "slack")
    await peers.slack.wait_for(1)
    for _ in range(500):
        (sent,) = await deliveries(admin, wait["id"])
        if sent["attempts"]:
            break
        await asyncio.sleep(0.01)
    assert (await get(admin, wait["id"]))["status"] == "waiting"
    clock.advance(5_000)
    await app.state.services.dispatcher.run_due()
    await peers.slack.wait_for(2)
    for _ in range(500):
        (sent,) = await deliveries(admin, wait["id"])
        if sent["status"] == "delivered":
            break
        await asyncio.sleep(0.01)
    assert sent["status"] == "delivered"
    assert [a["statusCode"] for a in sent["attempts"]] == [500, 200]
    assert (await get(admin, wait["id"]))["status"] == "waiting"


async def test_a_deleted_channel_can_no_longer_be_named_and_the_approval_stays_open(
    gw: Any, peers: Peers
) -> None:
    _app, admin = gw
    peers.teams.answering.clear()
    wait = await approval(admin, "teams")
    await peers.teams.wait_for(1)
    assert (await admin.delete("/api/v1/channels/teams")).status_code == 200
    peers.teams.answering.set()
    assert (await get(admin, wait["id"]))["status"] == "waiting"
    refused = await admin.post(
        f"/api/v1/executions/{(await create(admin))['id']}/wait",
        json={"approval": {"title": "x", "approvers": APPROVERS, "channels": ["teams"]}},
    )
    assert refused.status_code == 400
    assert '"teams" does not exist' in refused.json()["message"]


async def test_a_bot_token_posts_chat_post_message_and_an_answer_without_ok_is_retried(
    gw: Any, peers: Peers, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, admin = gw
    monkeypatch.setattr("gateway.channels.SLACK_POST_MESSAGE", peers.slack.url)
    monkeypatch.setattr("gateway.notify.SLACK_POST_MESSAGE", peers.slack.url)
    config = {"botToken": "xoxb-secret-token", "channel": "C0123"}
    made = await admin.post(
        "/api/v1/channels", json={"name": "bot", "type": "slack", "config": config}
    )
    assert made.status_code == 201, made.text
    assert "xoxb-secret-token" not in made.text
    wait = await approval(admin, "bot")
    await peers.slack.wait_for(1)
    got = peers.slack.received[0]
    assert got.headers["authorization"] == "Bearer xoxb-secret-token"
    message = msgspec.json.decode(got.body)
    assert message["channel"] == "C0123"
    check_block_kit({k: v for k, v in message.items() if k != "channel"}, wait["approvalUrls"])
    for _ in range(500):
        (sent,) = await deliveries(admin, wait["id"])
        if sent["attempts"]:
            break
        await asyncio.sleep(0.01)
    assert sent["status"] == "pending"
    assert "Slack answered" in sent["attempts"][0]["error"]
    assert "xoxb-secret-token" not in str(sent)
