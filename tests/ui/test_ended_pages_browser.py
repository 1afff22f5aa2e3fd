"""Issue 18, in Chromium on a phone-wide screen: the pages a person sees once a link is done.

Confirming a POST-only resume URL ends on "Done."; the same link again says it was already used;
a link whose wait timed out in the real process says when it expired. Each page is saved to
``docs/screenshots/`` (``done.png``, ``link-used.png``, ``link-expired.png``).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.process import GatewayProcess
from tests.ui.test_browser import CHROMIUM, FLAGS, SHOTS, api, async_api, gateway, parked

__all__ = ["gateway"]  # the browser tests' fixture, used here by name

pytestmark = pytest.mark.acceptance
PHONE = {"width": 390, "height": 844}


@pytest.fixture
async def phone() -> AsyncIterator[Any]:
    async with async_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = await chromium.new_context(viewport=PHONE)
        yield await context.new_page()
        await chromium.close()


async def test_done_used_and_expired_pages_on_a_phone(
    gateway: tuple[GatewayProcess, str], phone: Any
) -> None:
    with api(gateway) as client:
        wait = parked(client, webhook={"httpMethod": "POST"})
        await phone.goto(wait["resumeUrl"])
        await phone.get_by_role("button", name="Confirm").click()
        await phone.wait_for_selector("text=Done.")
        assert "Done." in await phone.inner_text("main")
        await phone.screenshot(path=SHOTS / "done.png", full_page=True)

        again = await phone.goto(wait["resumeUrl"])
        assert again is not None
        assert again.status == 409
        assert "This link was already used." in await phone.inner_text("main")
        await phone.screenshot(path=SHOTS / "link-used.png", full_page=True)

        soon = datetime.now(UTC) + timedelta(seconds=1)
        timed = parked(
            client,
            waitTill=soon.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            webhook={"httpMethod": "POST"},
        )
        deadline = time.monotonic() + 30
        while client.get(f"/api/v1/executions/{timed['id']}").json()["status"] == "waiting":
            assert time.monotonic() < deadline, "the wait never timed out"
            await asyncio.sleep(0.2)
        expired = await phone.goto(timed["resumeUrl"])
        assert expired is not None
        assert expired.status == 409
        text = await phone.inner_text("main")
        assert re.search(r"This request expired on \d{4}-\d\d-\d\d \d\d:\d\d UTC\.", text), text
        assert "already used" not in text
        await phone.screenshot(path=SHOTS / "link-expired.png", full_page=True)
