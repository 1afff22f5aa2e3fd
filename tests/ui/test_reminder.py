"""A reminder arrives by email, in Chromium: a real ``waitgate serve`` mailing a real SMTP
server (aiosmtpd); one approver decides at once, the reminder goes to the other one only,
whose link in it opens the page where they approve, and the execution resumes.

Screenshot: ``docs/screenshots/reminder-approval.png``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.api.test_notifications import Inbox, smtp_server, until
from tests.process import GatewayProcess
from tests.receiver import free_port
from tests.ui.test_browser import CHROMIUM, FLAGS, SHOTS, api, parked

pytestmark = pytest.mark.acceptance
async_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")
ADA = {"id": "ada", "name": "Ada", "email": "ada@example.com"}
BOB = {"id": "bob", "name": "Bob", "email": "bob@example.com"}


@pytest.fixture(scope="module")
def mail(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, str, Inbox]]:
    port = free_port()
    with smtp_server(port) as inbox:
        env = {
            "WAITGATE_LOG_LEVEL": "warning",
            "WAITGATE_CALLBACK_ALLOWED_ORIGINS": f"smtp://127.0.0.1:{port}",
        }
        process = GatewayProcess(tmp_path_factory.mktemp("reminder"), env)
        process.start()
        (key,) = process.admin_keys()
        with api((process, key)) as client:
            channel = {
                "name": "mail",
                "type": "email",
                "config": {"smtpUrl": f"smtp://127.0.0.1:{port}", "from": "gate@example.com"},
            }
            made = client.post("/api/v1/channels", json=channel)
            assert made.status_code == 201, made.text
        yield process, key, inbox
        process.kill()


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    async with async_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = await chromium.new_context(viewport={"width": 1000, "height": 800})
        yield await context.new_page()
        await chromium.close()


def text_of(message: Any) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    content: str = body.get_content()
    return content


async def test_a_reminder_email_reaches_the_other_approver_whose_link_approves(
    mail: tuple[GatewayProcess, str, Inbox], page: Any
) -> None:
    process, key, inbox = mail
    with api((process, key)) as client:
        approval = {
            "title": "Deploy 2.4 to production?",
            "description": "Every region, tonight.",
            "approvers": [ADA, BOB],
            "required": 2,
            "channels": ["mail"],
            "reminders": ["PT2S"],
        }
        wait = parked(client, approval=approval)
        assert "approvalUrls" in wait, wait
        urls = wait["approvalUrls"]
        await until(lambda: len(inbox.messages) == 2, within=10)
        assert sorted(m["To"] for m in inbox.messages) == ["ada@example.com", "bob@example.com"]
        # Ada approves through her personal link right away: 1 of the 2 required
        await page.goto(urls["ada"])
        await page.get_by_role("button", name="Approve").click()
        await page.get_by_role("status").wait_for()
        assert "recorded" in await page.get_by_role("status").inner_text()
        assert client.get(f"/api/v1/executions/{wait['id']}").json()["status"] == "waiting"
        # the reminder after 2 s: to Bob, and to nobody else
        await until(lambda: len(inbox.messages) >= 3, within=15)
        await asyncio.sleep(0.5)  # room for a wrong second reminder (to Ada) to show up
        assert len(inbox.messages) == 3, [m["To"] for m in inbox.messages]
        reminder = inbox.messages[2]
        assert reminder["To"] == "bob@example.com"
        assert reminder["Cc"] is None
        assert reminder["Subject"].startswith("Reminder:"), reminder["Subject"]
        assert "Deploy 2.4 to production?" in reminder["Subject"]
        found = re.search(re.escape(process.url) + r"/approval/\S+", text_of(reminder))
        assert found is not None, text_of(reminder)
        link = found.group(0)
        assert link == urls["bob"]
        # Bob opens the link from the reminder and approves: 2 of 2, the execution resumes
        await page.goto(link)
        assert await page.get_by_role("heading", level=1).inner_text() == approval["title"]
        await page.screenshot(path=SHOTS / "reminder-approval.png", full_page=True)
        await page.get_by_role("button", name="Approve").click()
        await page.get_by_role("status").wait_for()
        assert "Approved" in await page.get_by_role("status").inner_text()
        deadline = time.monotonic() + 10
        while True:
            body = client.get(
                f"/api/v1/executions/{wait['id']}", params={"includeData": "true"}
            ).json()
            if body["status"] != "waiting" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert body["status"] == "running", body["status"]
        (only,) = body["data"]["waits"]
        assert only["resumedBy"] == "approval"
        assert only["payload"]["approved"] is True
        assert [d["approver"] for d in only["payload"]["decisions"]] == ["ada", "bob"]
