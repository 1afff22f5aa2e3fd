"""People's pages in a real browser: Playwright driving the system Chromium, headless.

Each test saves a screenshot of the page it exercises: into a temporary folder, so that a test
run leaves the checkout as it was, or into the folder ``WAITGATE_SCREENSHOTS`` names
(``make screenshots`` refreshes ``docs/screenshots/``). Without Chromium (Debian package
``chromium``) the tests are skipped, saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.process import GatewayProcess

pytestmark = pytest.mark.acceptance
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path(os.environ.get("WAITGATE_SCREENSHOTS") or tempfile.mkdtemp(prefix="waitgate-shots-"))
SHOTS.mkdir(parents=True, exist_ok=True)
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

if CHROMIUM is None:
    pytest.skip(
        "Chromium is not installed (Debian: apt-get install chromium)", allow_module_level=True
    )
async_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, str]]:
    process = GatewayProcess(tmp_path_factory.mktemp("browser"), {"WAITGATE_LOG_LEVEL": "warning"})
    process.start()
    (key,) = process.admin_keys()
    yield process, key
    process.kill()


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    async with async_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = await chromium.new_context(viewport={"width": 1000, "height": 800})
        yield await context.new_page()
        await chromium.close()


def api(gateway: tuple[GatewayProcess, str]) -> httpx.Client:
    process, key = gateway
    return httpx.Client(base_url=process.url, headers={"X-N8N-API-KEY": key})


def parked(client: httpx.Client, **wait: Any) -> dict[str, Any]:
    created = client.post(
        "/api/v1/executions", json={"workflowId": "browser", **wait.pop("create", {})}
    )
    body: dict[str, Any] = client.post(
        f"/api/v1/executions/{created.json()['id']}/wait", json=wait
    ).json()
    return body


async def test_approve_in_the_browser(gateway: tuple[GatewayProcess, str], page: Any) -> None:
    with api(gateway) as client:
        wait = parked(
            client,
            approval={"title": "Buy a laptop for Ada?", "description": "ThinkPad X1, 1,450 EUR."},
        )
        await page.goto(wait["approvalUrl"])
        await page.screenshot(path=SHOTS / "approval.png")
        await page.fill("#comment", "Within budget")
        await page.get_by_role("button", name="Approve").click()
        await page.get_by_role("status").wait_for()
        assert "Approved" in await page.get_by_role("status").inner_text()
        await page.screenshot(path=SHOTS / "approval-done.png")
        waits = client.get(
            f"/api/v1/executions/{wait['id']}", params={"includeData": "true"}
        ).json()["data"]["waits"]
        assert waits[0]["payload"]["approved"] is True
        assert waits[0]["payload"]["comment"] == "Within budget"
        await page.goto(wait["approvalUrl"])
        assert await page.get_by_role("button", name="Approve").count() == 0


async def test_form_with_a_validation_error_then_success(
    gateway: tuple[GatewayProcess, str], page: Any
) -> None:
    fields = [
        {"label": "Your name", "name": "name", "required": True},
        {"label": "Email", "name": "email", "type": "email", "required": True},
        {"label": "Team", "name": "team", "type": "dropdown", "options": ["Platform", "Payments"]},
    ]
    with api(gateway) as client:
        wait = parked(client, form={"title": "Welcome aboard", "fields": fields})
        await page.goto(wait["resumeFormUrl"])
        await page.fill("#name", "Grace")
        await page.fill("#email", "not-an-email")
        await page.get_by_role("button", name="Submit").click()
        await page.wait_for_selector(".error")
        assert "Enter an email address." in await page.inner_text("#email-error")
        assert await page.input_value("#name") == "Grace"  # what was typed is kept
        await page.screenshot(path=SHOTS / "form-errors.png")
        await page.fill("#email", "grace@example.com")
        await page.select_option("#team", "Payments")
        await page.get_by_role("button", name="Submit").click()
        await page.get_by_role("status").wait_for()
        assert "Thank you" in await page.get_by_role("status").inner_text()
        data = client.get(
            f"/api/v1/executions/{wait['id']}", params={"includeData": "true"}
        ).json()["data"]["waits"][0]["payload"]["formData"]
        assert data == {"name": "Grace", "email": "grace@example.com", "team": "Payments"}


async def test_dashboard_login_filter_and_stop(
    gateway: tuple[GatewayProcess, str], page: Any
) -> None:
    process, key = gateway
    with api(gateway) as client:
        target = parked(
            client,
            create={"customData": {"tenant": "acme"}},
            waitTill="2030-01-01T00:00:00Z",
            webhook={},
        )
        await page.goto(process.url + "/ui")
        await page.fill("#api_key", key)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url("**/ui")
        await page.select_option("#status", "waiting")
        await page.fill("#cd", "tenant=acme")
        await page.get_by_role("button", name="Filter").click()
        await page.wait_for_url("**/ui?*")
        link = page.get_by_role("link", name=str(target["id"]), exact=True)
        assert await link.count() == 1
        await page.screenshot(path=SHOTS / "dashboard.png", full_page=True)
        await link.click()
        await page.get_by_role("button", name="Stop").wait_for()
        await page.screenshot(path=SHOTS / "execution.png", full_page=True)
        await page.get_by_role("button", name="Stop").click()
        await page.get_by_role("button", name="Confirm: stop").click()  # "Are you sure?"
        await page.get_by_role("status").wait_for()
        assert "Stop: done." in await page.get_by_role("status").inner_text()
        assert client.get(f"/api/v1/executions/{target['id']}").json()["status"] == "canceled"


async def stripe_event(url: str, secret: str, event_id: str, kind: str, order_id: str) -> None:
    """Post a Stripe-signed event (the ``stripe`` package's scheme) to ``/events/stripe``."""
    stripe = pytest.importorskip("stripe")
    body = json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": kind,
            "data": {"object": {"id": "pi_1", "metadata": {"orderId": order_id}}},
        }
    )
    signature = stripe.WebhookSignature.generate_signature_header(body, secret)
    async with httpx.AsyncClient(base_url=url) as provider:
        sent = await provider.post(
            "/events/stripe",
            content=body,
            headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
        )
    assert sent.status_code == 200, sent.text


async def test_events_page_and_the_execution_an_event_resumed(
    gateway: tuple[GatewayProcess, str], page: Any
) -> None:
    process, key = gateway
    secret = "whsec_" + "browser" * 5
    with api(gateway) as client:
        source = {"name": "stripe", "verify": {"type": "stripe", "secret": secret}}
        assert client.post("/api/v1/event-sources", json=source).status_code == 201
        order = parked(
            client,
            create={"customData": {"orderId": "A-1042"}},
            events=[
                {
                    "source": "stripe",
                    "name": "payment_intent.succeeded",
                    "match": {"data.object.metadata.orderId": {"customData": "orderId"}},
                }
            ],
        )
        for event_id, kind, order_id in [
            ("evt_3PaidA1042", "payment_intent.succeeded", "A-1042"),
            ("evt_3PaidA1042", "payment_intent.succeeded", "A-1042"),  # a redelivery
            ("evt_3FailB2001", "payment_intent.payment_failed", "B-2001"),
        ]:
            await stripe_event(process.url, secret, event_id, kind, order_id)
        assert client.get(f"/api/v1/executions/{order['id']}").json()["status"] == "running"

        await page.goto(process.url + "/ui")
        await page.fill("#api_key", key)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url("**/ui")
        await page.get_by_role("link", name="Events", exact=True).click()
        await page.wait_for_url("**/ui/events")
        statuses = await page.locator("td.status").all_inner_texts()
        assert statuses == ["unmatched", "duplicate", "matched"]
        await page.screenshot(path=SHOTS / "events.png", full_page=True)

        await page.goto(f"{process.url}/ui/executions/{order['id']}")
        card = page.locator(".resumed-by-event")
        assert "payment_intent.succeeded" in await card.inner_text()
        assert "evt_3PaidA1042" in await card.inner_text()
        await card.get_by_role("link").click()
        await page.wait_for_url("**/ui/events/*")
        assert await page.get_by_role("button", name="Replay").count() == 1
        link = page.get_by_role("link", name=str(order["id"]), exact=True)
        assert await link.count() == 1
        assert "**redacted**" in await page.locator("tr", has_text="stripe-signature").inner_text()
