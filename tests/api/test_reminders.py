"""Reminders and escalation of approvals, through the scheduler's exact timer (ManualClock,
never slept through) and a real SMTP server (aiosmtpd), on every backend."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest

from gateway.clock import ManualClock
from tests.api import test_notifications as notifications
from tests.api.test_notifications import Peers, deliveries, link_in, smtp_server, until
from tests.conftest import create, get

gw = notifications.gw
peers = notifications.peers

HOUR = 3_600_000
ADA = {"id": "ada", "name": "Ada", "email": "ada@example.com"}
BOB = {"id": "bob", "email": "bob@example.com"}
CY = {"id": "cy", "name": "Cy", "email": "cy@example.com"}


async def park_approval(admin: httpx.AsyncClient, **fields: Any) -> httpx.Response:
    execution = await create(admin)
    approval = {"title": "Deploy 1.2?", "approvers": [ADA, BOB], "channels": ["mail"], **fields}
    return await admin.post(
        f"/api/v1/executions/{execution['id']}/wait", json={"approval": approval}
    )


async def parked(admin: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    answer = await park_approval(admin, **fields)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def decide(app: Any, link: str) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as browser:
        decided = await browser.post(link, data={"decision": "approve"})
        assert decided.status_code == 200, decided.text


async def test_a_reminder_reaches_only_the_approver_who_has_not_decided(
    gw: Any, peers: Peers, clock: ManualClock
) -> None:
    app, admin = gw
    svc = app.state.services
    with smtp_server(peers.smtp_port) as inbox:
        wait = await parked(admin, required=2, reminders=["PT4H", "P1D"])
        await until(lambda: len(inbox.messages) == 2)
        await decide(app, wait["approvalUrls"]["ada"])
        clock.advance(4 * HOUR - 1)
        await svc.scheduler.run_due()
        clock.advance(1)
        await svc.scheduler.run_due()
        await until(lambda: len(inbox.messages) == 3)
        reminder = inbox.messages[2]
        assert reminder["To"] == "bob@example.com"
        assert reminder["Subject"].startswith("Reminder:")
        text = reminder.get_body(("plain",))
        assert text is not None
        assert link_in(text.get_content()) == wait["approvalUrls"]["bob"]
        await svc.scheduler.run_due()
        sent = await deliveries(admin, wait["id"])
        assert sorted(d["targetUrl"] for d in sent) == [
            "mailto:ada@example.com",
            "mailto:bob@example.com",
            "mailto:bob@example.com",
        ]


async def test_no_reminder_or_escalation_after_the_wait_ended(
    gw: Any, peers: Peers, clock: ManualClock
) -> None:
    app, admin = gw
    svc = app.state.services
    escalation = {"after": "PT2H", "approvers": [CY]}
    wait = await parked(admin, reminders=["PT1H"], escalation=escalation)
    await decide(app, wait["approvalUrls"]["ada"])
    assert (await get(admin, wait["id"]))["status"] == "running"
    clock.advance(3 * HOUR)
    await svc.scheduler.run_due()
    assert len(await deliveries(admin, wait["id"])) == 2
    assert await svc.store.claim_timers(clock.now_ms(), 10) == []


async def test_escalation_adds_approvers_who_decide_through_their_links_and_count(
    gw: Any, peers: Peers, clock: ManualClock
) -> None:
    app, admin = gw
    svc = app.state.services
    with smtp_server(peers.smtp_port) as inbox:
        escalation = {"after": "P2D", "approvers": [CY]}
        wait = await parked(admin, required=2, escalation=escalation)
        await until(lambda: len(inbox.messages) == 2)
        await decide(app, wait["approvalUrls"]["ada"])
        clock.advance(48 * HOUR)
        await svc.scheduler.run_due()
        await until(lambda: len(inbox.messages) == 3)
    message = inbox.messages[2]
    assert message["To"] == "cy@example.com"
    assert "escalated" in message["Subject"]
    text = message.get_body(("plain",))
    assert text is not None
    await decide(app, link_in(text.get_content()))
    assert (await get(admin, wait["id"]))["status"] == "running"
    (first,) = (await get(admin, wait["id"], includeData="true"))["data"]["waits"]
    decisions = first["payload"]["decisions"]
    assert [(d["approver"], d["decision"]) for d in decisions] == [
        ("ada", "approve"),
        ("cy", "approve"),
    ]
    assert first["payload"]["approved"] is True


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"reminders": ["PT4H", "4 hours"]}, "approval.reminders[1]: '4 hours'"),
        ({"reminders": ["P1Y"]}, "approval.reminders[0]: 'P1Y'"),
        ({"reminders": ["PT0S"]}, "approval.reminders[0]: 'PT0S'"),
        ({"escalation": {"after": "soon", "approvers": [CY]}}, "approval.escalation.after"),
        ({"reminders": ["PT1H"] * 11}, "approval.reminders"),
        ({"escalation": {"after": "P1D", "approvers": []}}, "approval.escalation.approvers"),
        ({"escalation": {"after": "P1D", "approvers": [ADA]}}, "'ada' is repeated"),
        ({"reminders": ["PT1H"], "channels": []}, "approval.reminders needs approval.channels"),
    ],
)
async def test_bad_reminders_and_escalations_are_refused_naming_them(
    gw: Any, fields: dict[str, Any], named: str
) -> None:
    _, admin = gw
    answer = await park_approval(admin, **fields)
    assert answer.status_code == 400, answer.text
    assert named in answer.text


async def test_a_slack_reminder_is_one_message_naming_the_undecided(
    gw: Any, peers: Peers, clock: ManualClock
) -> None:
    app, admin = gw
    wait = await parked(
        admin, approvers=[ADA, BOB, CY], required=2, channels=["slack"], reminders=["PT1H"]
    )
    await peers.slack.wait_for(1)
    await decide(app, wait["approvalUrls"]["ada"])
    clock.advance(HOUR)
    await app.state.services.scheduler.run_due()
    await peers.slack.wait_for(2)
    reminder = msgspec.json.decode(peers.slack.received[1].body)
    assert reminder["text"].startswith("Reminder: approval needed")
    section = reminder["blocks"][1]["text"]["text"]
    assert "bob" in section
    assert "Cy" in section
    assert "Ada" not in section
    urls = {e["url"] for b in reminder["blocks"][2:] for e in b["elements"]}
    assert urls == {wait["approvalUrls"]["bob"], wait["approvalUrls"]["cy"]}
