"""The people's pages on a phone (390 px wide) and with the keyboard, in Chromium: approvers
deciding through their personal links, an approver's inbox, and the dashboard's overview.

Screenshots: ``docs/screenshots/approval-phone.png``, ``inbox.png`` and ``overview.png``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.process import GatewayProcess
from tests.ui.test_browser import CHROMIUM, FLAGS, SHOTS, api, parked

pytestmark = pytest.mark.acceptance
async_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")
PHONE = {"width": 390, "height": 844}
THREE = [{"id": "ada", "name": "Ada"}, {"id": "bob", "name": "Bob"}, {"id": "cy", "name": "Cy"}]
NO_SIDEWAYS = "document.documentElement.scrollWidth <= 390"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, str]]:
    process = GatewayProcess(tmp_path_factory.mktemp("people"), {"WAITGATE_LOG_LEVEL": "warning"})
    process.start()
    (key,) = process.admin_keys()
    yield process, key
    process.kill()


@pytest.fixture
async def phone() -> AsyncIterator[Any]:
    async with async_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = await chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
        yield await context.new_page()
        await chromium.close()


def in_hours(hours: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + hours * 3600))


def approval_wait(client: httpx.Client, title: str, **approval: Any) -> dict[str, Any]:
    spec = {"title": title, "description": "Release 2.4 to every region.", "approvers": THREE}
    return parked(client, approval={**spec, **approval}, waitTill=in_hours(3))


def waits(client: httpx.Client, eid: int) -> list[dict[str, Any]]:
    body = client.get(f"/api/v1/executions/{eid}", params={"includeData": "true"}).json()
    found: list[dict[str, Any]] = body["data"]["waits"]
    return found


async def test_two_of_three_approve_on_their_phones_with_the_keyboard_and_it_resumes_once(
    gateway: tuple[GatewayProcess, str], phone: Any
) -> None:
    with api(gateway) as client:
        wait = approval_wait(client, "Deploy to production?", required=2)
        urls = wait["approvalUrls"]
        await phone.goto(urls["ada"])
        assert await phone.evaluate(NO_SIDEWAYS)
        assert await phone.get_attribute("html", "lang") == "en"
        assert await phone.get_by_role("heading", level=1).inner_text() == "Deploy to production?"
        assert await phone.get_by_label("Comment (optional)").count() == 1
        await phone.screenshot(path=SHOTS / "approval-phone.png", full_page=True)
        # the keyboard alone: into the comment, type, Tab to Approve, Enter
        await phone.focus("#comment")
        await phone.keyboard.type("Looks good")
        await phone.keyboard.press("Tab")
        assert await phone.evaluate("document.activeElement.textContent") == "Approve"
        await phone.keyboard.press("Enter")
        await phone.get_by_role("status").wait_for()
        assert "recorded" in await phone.get_by_role("status").inner_text()
        assert await phone.evaluate(NO_SIDEWAYS)
        assert client.get(f"/api/v1/executions/{wait['id']}").json()["status"] == "waiting"
        await phone.goto(urls["bob"])
        await phone.get_by_role("button", name="Approve").click()
        await phone.get_by_role("status").wait_for()
        assert "Approved" in await phone.get_by_role("status").inner_text()
        (only,) = waits(client, wait["id"])
        assert only["resumedBy"] == "approval"
        assert only["payload"]["approved"] is True
        assert [d["approver"] for d in only["payload"]["decisions"]] == ["ada", "bob"]
        await phone.goto(urls["cy"])
        assert await phone.get_by_role("button", name="Reject").count() == 0
        assert "already approved" in await phone.get_by_role("status").inner_text()
        assert len(waits(client, wait["id"])) == 1


async def test_a_reject_on_a_phone_rejects(gateway: tuple[GatewayProcess, str], phone: Any) -> None:
    with api(gateway) as client:
        wait = approval_wait(client, "Refund 3,000 EUR?", required=2)
        await phone.goto(wait["approvalUrls"]["cy"])
        await phone.fill("#comment", "Not without the invoice")
        await phone.get_by_role("button", name="Reject").click()
        await phone.get_by_role("status").wait_for()
        assert "Rejected" in await phone.get_by_role("status").inner_text()
        (only,) = waits(client, wait["id"])
        assert only["payload"]["approved"] is False
        assert only["payload"]["decisions"][0]["comment"] == "Not without the invoice"


async def test_the_inbox_lists_the_request_and_leads_to_its_page(
    gateway: tuple[GatewayProcess, str], phone: Any
) -> None:
    with api(gateway) as client:
        wait = approval_wait(client, "Open a new office in Lisbon?")
        await phone.goto(wait["inboxUrls"]["bob"])
        assert await phone.evaluate(NO_SIDEWAYS)
        assert await phone.get_by_role("heading", level=1).inner_text() == "Your requests"
        link = phone.get_by_role("link", name="Open a new office in Lisbon?")
        assert await link.count() == 1
        assert "in 2 h" in await phone.inner_text("main")
        await phone.screenshot(path=SHOTS / "inbox.png", full_page=True)
        await link.focus()
        await phone.keyboard.press("Enter")
        await phone.wait_for_url("**/approval/**")
        assert phone.url == wait["approvalUrls"]["bob"]
        assert await phone.get_by_role("button", name="Approve").count() == 1
        assert await phone.evaluate(NO_SIDEWAYS)


async def test_the_overview_shows_the_counts_and_the_chart(
    gateway: tuple[GatewayProcess, str],
) -> None:
    process, key = gateway
    with api(gateway) as client:
        approval_wait(client, "Hire two more engineers?")
        parked(client, webhook={}, waitTill=in_hours(0.5))
    async with async_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = await (
            await chromium.new_context(viewport={"width": 1000, "height": 800})
        ).new_page()
        await page.goto(process.url + "/ui")
        await page.fill("#api_key", key)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url("**/ui")
        await page.get_by_role("link", name="Overview").click()
        await page.wait_for_url("**/ui/overview")
        waiting = page.locator("ul.counts a", has_text="waiting")
        assert int(await waiting.locator("strong").inner_text()) >= 2
        chart = page.get_by_role("img", name="Deadlines per hour over the next 24 hours")
        assert await chart.count() == 1
        assert await page.locator("svg.chart rect.bar").count() >= 2
        assert await page.get_by_role("cell", name="Hire two more engineers?").count() == 1
        await page.screenshot(path=SHOTS / "overview.png", full_page=True)
        await chromium.close()


async def test_the_form_page_fits_a_phone_and_works_with_the_keyboard(
    gateway: tuple[GatewayProcess, str], phone: Any
) -> None:
    fields = [
        {"label": "Your name", "name": "name", "required": True},
        {"label": "Team", "name": "team", "type": "dropdown", "options": ["Platform", "Payments"]},
    ]
    with api(gateway) as client:
        wait = parked(client, form={"title": "Which team?", "fields": fields})
        await phone.goto(wait["resumeFormUrl"])
        assert await phone.evaluate(NO_SIDEWAYS)
        await phone.get_by_label("Your name").focus()
        await phone.keyboard.type("Grace")
        await phone.keyboard.press("Tab")
        assert await phone.evaluate("document.activeElement.id") == "team"
        await phone.keyboard.press("Tab")
        assert await phone.evaluate("document.activeElement.tagName") == "BUTTON"
        await phone.keyboard.press("Enter")
        await phone.get_by_role("status").wait_for()
        assert "Thank you" in await phone.get_by_role("status").inner_text()
        assert await phone.evaluate(NO_SIDEWAYS)
