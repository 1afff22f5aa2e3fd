"""Per-wait caller checks and the bot-safe GET; a failed check never uses up the wait."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import httpx
import pytest

from gateway.clock import ManualClock
from tests.conftest import create, get, park


async def parked(client: httpx.AsyncClient, **webhook: Any) -> dict[str, Any]:
    execution = await create(client)
    return await park(client, execution["id"], webhook={"httpMethod": "POST", **webhook})


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_basic_auth(client: httpx.AsyncClient, anon: httpx.AsyncClient) -> None:
    wait = await parked(
        client, authentication={"type": "basic", "username": "partner", "password": "s3cret"}
    )
    missing = await anon.post(wait["resumeUrl"])
    assert (missing.status_code, missing.json()["message"]) == (401, "Authorization is required!")
    assert missing.headers["www-authenticate"] == 'Basic realm="Webhook"'
    wrong = await anon.post(wait["resumeUrl"], headers=basic("partner", "guess"))
    assert (wrong.status_code, wrong.json()["message"]) == (403, "Authorization data is wrong!")
    assert (await get(client, wait["id"]))["status"] == "waiting"  # nothing used up
    right = await anon.post(wait["resumeUrl"], headers=basic("partner", "s3cret"))
    assert right.status_code == 200


async def test_header_auth(client: httpx.AsyncClient, anon: httpx.AsyncClient) -> None:
    """What the README says: header auth answers n8n's 403 ``Authorization data is wrong!``
    whether the header is missing or wrong."""
    wait = await parked(
        client,
        authentication={"type": "header", "headerName": "X-Partner-Key", "headerValue": "k-1"},
    )
    refused = {"message": "Authorization data is wrong!", "code": 403}
    wrong = await anon.post(wait["resumeUrl"], headers={"X-Partner-Key": "k-2"})
    assert (wrong.status_code, wrong.json()) == (403, refused)
    missing = await anon.post(wait["resumeUrl"])
    assert (missing.status_code, missing.json()) == (403, refused)
    assert (await get(client, wait["id"]))["status"] == "waiting"  # nothing used up
    assert (await anon.post(wait["resumeUrl"], headers={"X-Partner-Key": "k-1"})).status_code == 200


async def test_hmac_of_the_raw_body_github_style(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    wait = await parked(
        client,
        authentication={
            "type": "hmac",
            "headerName": "X-Hub-Signature-256",
            "secret": "gh-secret",
            "prefix": "sha256=",
        },
    )
    body = b'{"action":"approved"}'
    good = "sha256=" + hmac.new(b"gh-secret", body, hashlib.sha256).hexdigest()
    tampered = await anon.post(
        wait["resumeUrl"], content=body + b" ", headers={"X-Hub-Signature-256": good}
    )
    assert tampered.status_code == 403
    ok = await anon.post(
        wait["resumeUrl"],
        content=body,
        headers={"X-Hub-Signature-256": good, "content-type": "application/json"},
    )
    assert ok.status_code == 200


async def test_hmac_stripe_style_with_tolerance(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, clock: ManualClock
) -> None:
    wait = await parked(
        client,
        authentication={
            "type": "hmac",
            "headerName": "Stripe-Signature",
            "secret": "whsec_x",
            "style": "stripe",
            "toleranceSeconds": 60,
        },
    )
    body = b'{"type":"payment_intent.succeeded"}'

    def header(stamp: int) -> str:
        signed = f"{stamp}.".encode() + body
        return f"t={stamp},v1=" + hmac.new(b"whsec_x", signed, hashlib.sha256).hexdigest()

    old = await anon.post(
        wait["resumeUrl"],
        content=body,
        headers={"Stripe-Signature": header(clock.now_ms() // 1000 - 600)},
    )
    assert old.status_code == 403
    fresh = await anon.post(
        wait["resumeUrl"],
        content=body,
        headers={"Stripe-Signature": header(clock.now_ms() // 1000)},
    )
    assert fresh.status_code == 200


async def test_ip_allow_list_and_bots(client: httpx.AsyncClient, anon: httpx.AsyncClient) -> None:
    # httpx's ASGI transport calls from 127.0.0.1
    elsewhere = await parked(client, allowedIps=["10.0.0.0/8"])
    refused = await anon.post(elsewhere["resumeUrl"])
    assert (refused.status_code, refused.json()["message"]) == (
        403,
        "IP is not allowed to access the webhook!",
    )
    local = await parked(client, allowedIps=["127.0.0.0/8", "::1"], ignoreBots=True)
    bot = await anon.post(local["resumeUrl"], headers={"user-agent": "Slackbot-LinkExpanding 1.0"})
    assert bot.status_code == 403
    assert (await get(client, local["id"]))["status"] == "waiting"
    assert (
        await anon.post(local["resumeUrl"], headers={"user-agent": "curl/8"})
    ).status_code == 200


async def test_a_browser_get_on_a_post_wait_shows_a_confirmation_page(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    wait = await parked(client)
    preview = await anon.get(wait["resumeUrl"], headers={"accept": "*/*"})
    assert preview.status_code == 404  # a scanner: nothing to see, nothing resumed
    page = await anon.get(wait["resumeUrl"], headers={"accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'method="post"' in page.text
    assert wait["resumeUrl"].split("?")[1].replace("&", "&amp;") in page.text
    assert (await get(client, wait["id"]))["status"] == "waiting"
    confirmed = await anon.post(wait["resumeUrl"], data={"confirmed": "true"})
    assert confirmed.status_code == 200
    resumed = (await get(client, wait["id"], includeData="true"))["data"]["waits"][0]
    assert resumed["payload"]["body"] == {"confirmed": "true"}


@pytest.mark.parametrize(
    ("webhook", "fragment"),
    [
        ({"authentication": {"type": "basic", "username": "u"}}, "password is required"),
        ({"authentication": {"type": "header", "headerName": "X"}}, "headerValue is required"),
        ({"authentication": {"type": "hmac", "headerName": "X"}}, "secret is required"),
        ({"authentication": {"type": "kerberos"}}, "Invalid request body"),
        ({"allowedIps": ["not-an-ip"]}, "webhook.allowedIps"),
    ],
)
async def test_bad_caller_auth_settings_are_400(
    client: httpx.AsyncClient, webhook: dict[str, Any], fragment: str
) -> None:
    execution = await create(client)
    response = await client.post(
        f"/api/v1/executions/{execution['id']}/wait", json={"webhook": webhook}
    )
    assert response.status_code == 400
    assert fragment in response.json()["message"]
