"""The API reference in Chromium: Swagger UI, served by the gateway itself, renders every
operation under the page's CSP, loads nothing from elsewhere, and its try-it calls the gateway.

Saves ``docs/screenshots/api-reference.png``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from gateway.routes.docs import openapi_document
from tests.process import GatewayProcess
from tests.ui.test_browser import SHOTS, gateway, page

__all__ = ["gateway", "page"]  # fixtures of the browser tests, used here by name


def operation_count() -> int:
    methods = {"get", "post", "put", "patch", "delete", "head", "options"}
    return sum(
        1 for item in openapi_document()["paths"].values() for method in item if method in methods
    )


async def test_the_api_reference_renders_every_operation(
    gateway: tuple[GatewayProcess, str], page: Any
) -> None:
    process, key = gateway
    requested: list[str] = []
    refused: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    await page.set_viewport_size({"width": 1280, "height": 900})
    await page.goto(process.url + "/api/v1/docs")
    operations = page.locator(".opblock")
    await operations.first.wait_for()
    assert await operations.count() == operation_count()
    await page.get_by_text("Create an execution", exact=False).first.wait_for()
    assert refused == []
    origin = urlsplit(process.url).netloc
    assert {urlsplit(url).netloc for url in requested if not url.startswith("data:")} == {origin}

    # Open the engine's create call: its request body example is shown, and try-it works.
    create = page.locator("#operations-Engine-createExecution")
    await create.locator(".opblock-summary").click()
    await create.get_by_text("order-approval").first.wait_for()
    await page.screenshot(path=SHOTS / "api-reference.png")
    await page.locator(".auth-wrapper .authorize").click()
    await page.locator(".auth-container input").first.fill(key)
    await page.locator(".auth-btn-wrapper .authorize").first.click()
    await page.locator(".btn-done").first.click()
    await create.get_by_role("button", name="Try it out").click()
    await create.locator("textarea.body-param__text").fill('{"workflowId": "from-the-docs"}')
    await create.get_by_role("button", name="Execute").click()
    status = create.locator(".live-responses-table tbody .response-col_status").first
    await status.wait_for()
    assert (await status.inner_text()).strip().startswith("201")
    await create.get_by_text("from-the-docs").last.wait_for()  # the gateway's answer, shown
