"""A form from a JSON Schema, filled in Chromium with the keyboard only (Tab, typing, Space,
Enter): a refused value is announced next to its field, then the form resumes the wait with
typed values. Saves ``docs/screenshots/schema-form.png``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.process import GatewayProcess
from tests.ui.test_browser import SHOTS, api, gateway, page, parked

pytestmark = pytest.mark.acceptance
__all__ = ["gateway", "page"]  # fixtures shared with test_browser

SCHEMA: dict[str, Any] = {
    "title": "Book a trip",
    "description": "Where and how long; we book the rest.",
    "type": "object",
    "properties": {
        "name": {"type": "string", "title": "Your name", "minLength": 2},
        "email": {"type": "string", "format": "email", "title": "Email"},
        "start": {"type": "string", "format": "date", "title": "First day"},
        "nights": {
            "type": "integer",
            "title": "Nights",
            "minimum": 1,
            "maximum": 14,
            "description": "1 to 14",
        },
        "refundable": {"type": "boolean", "title": "Refundable fare"},
        "seat": {"enum": ["aisle", "window"], "title": "Seat"},
        "extras": {
            "type": "array",
            "title": "Extras",
            "items": {"enum": ["breakfast", "parking", "late checkout"]},
        },
    },
    "required": ["name", "email", "nights"],
}


async def tab_to(page: Any, element_id: str) -> None:
    """Press Tab until the element with this id has the focus (at most 20 times)."""
    for _ in range(20):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.id") == element_id:
            return
    raise AssertionError(f"Tab never reached #{element_id}")


async def test_a_schema_form_filled_with_the_keyboard(
    gateway: tuple[GatewayProcess, str], page: Any
) -> None:
    with api(gateway) as client:
        wait = parked(client, form={"schema": SCHEMA})
        await page.goto(wait["resumeFormUrl"])
        await tab_to(page, "name")
        await page.keyboard.type("Grace Hopper")
        await tab_to(page, "email")
        await page.keyboard.type("grace@example.com")
        await tab_to(page, "start")
        await page.keyboard.type("12012026")  # month, day, year in Chromium's en-US date field
        await tab_to(page, "nights")
        await page.keyboard.type("30")
        await tab_to(page, "refundable")
        await page.keyboard.press("Space")
        await tab_to(page, "seat")
        await page.keyboard.type("w")  # type-ahead picks "window"
        await tab_to(page, "extras-0")
        await page.keyboard.press("Space")
        await tab_to(page, "extras-2")
        await page.keyboard.press("Space")
        await page.keyboard.press("Enter")  # submits the form from a checkbox
        await page.wait_for_selector("#nights-error")
        assert "Enter a number of at most 14." in await page.inner_text("#nights-error")
        assert "Nights: Enter a number of at most 14." in await page.inner_text("[role=alert]")
        assert await page.get_attribute("#nights", "aria-invalid") == "true"
        assert await page.input_value("#email") == "grace@example.com"  # kept
        assert await page.is_checked("#extras-2")
        assert (client.get(f"/api/v1/executions/{wait['id']}")).json()["status"] == "waiting"
        await page.screenshot(path=SHOTS / "schema-form.png", full_page=True)
        await tab_to(page, "nights")
        await page.keyboard.press("Control+A")
        await page.keyboard.type("3")
        await page.keyboard.press("Enter")
        await page.get_by_role("status").wait_for()
        assert "Thank you" in await page.get_by_role("status").inner_text()
        waits = client.get(
            f"/api/v1/executions/{wait['id']}", params={"includeData": "true"}
        ).json()["data"]["waits"]
        assert waits[0]["resumedBy"] == "form"
        assert waits[0]["payload"]["formData"] == {
            "name": "Grace Hopper",
            "email": "grace@example.com",
            "start": "2026-12-01",
            "nights": 3,
            "refundable": True,
            "seat": "window",
            "extras": ["breakfast", "late checkout"],
        }
