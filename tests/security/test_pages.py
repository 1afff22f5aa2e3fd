"""Approval, form and confirmation pages: caller checks, wait-bound actions, relative form
actions behind a TLS proxy, and a total body limit on form uploads (issue 11, findings 6 to 9)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import html
import re
from collections.abc import AsyncIterator
from typing import Any, NamedTuple
from urllib.parse import urljoin

import httpx
import pytest
from starlette.applications import Starlette

from gateway.clock import ManualClock
from gateway.config import Settings
from gateway.services import Services
from tests.conftest import BASE_URL, create, fire_timers, get, park, running_gateway

APPROVAL: dict[str, Any] = {"title": "Wire 50,000 EUR?", "description": "To ACME Ltd, invoice 42"}
FORM: dict[str, Any] = {
    "title": "Payout",
    "fields": [{"label": "IBAN", "name": "iban", "required": True}],
}
SCHEMA_FORM: dict[str, Any] = {
    "title": "Payout from a schema",
    "schema": {
        "type": "object",
        "properties": {"iban": {"type": "string", "title": "IBAN", "minLength": 4}},
        "required": ["iban"],
    },
}
FILE_FORM: dict[str, Any] = {
    "title": "Upload",
    "fields": [
        {"label": "Note", "name": "note"},
        {"label": "Scan", "name": "scan", "type": "file", "maxBytes": 1024},
    ],
}
CANCEL = {"approval": {**APPROVAL, "onReject": "cancel"}}
FORM_ENCODED = "application/x-www-form-urlencoded"
BOT = {"user-agent": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"}
ONE_MINUTE = "2026-01-01T00:01:00Z"  # the ManualClock starts at 2026-01-01T00:00:00Z


class Kind(NamedTuple):
    """One kind of page: how it is parked, its URL field, and a valid answer."""

    name: str
    spec: dict[str, Any]
    url: str
    answer: dict[str, str]


KINDS = [
    pytest.param(Kind("approval", APPROVAL, "approvalUrl", {"decision": "approve"}), id="approval"),
    pytest.param(Kind("form", FORM, "resumeFormUrl", {"iban": "DE89"}), id="form"),
    pytest.param(Kind("form", SCHEMA_FORM, "resumeFormUrl", {"iban": "DE89"}), id="schema-form"),
]


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def caller(app: Starlette, ip: str) -> httpx.AsyncClient:
    """A client without an API key whose requests come from ``ip``."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(ip, 40000)), base_url=BASE_URL
    )


def form_action(page: httpx.Response) -> str:
    found = re.search(r'<form method="post" action="([^"]*)"', page.text)
    assert found is not None, page.text
    return html.unescape(found.group(1))


async def page_wait(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    execution = await create(client)
    return await park(client, execution["id"], **fields)


# Finding 6: the wait's caller checks apply on the pages too --------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_a_page_refuses_a_caller_outside_allowed_ips(
    app: Starlette, client: httpx.AsyncClient, kind: Kind
) -> None:
    url, spec = kind.url, kind.spec
    wait = await page_wait(
        client, webhook={"httpMethod": "POST", "allowedIps": ["10.0.0.0/8"]}, **{kind.name: spec}
    )
    async with caller(app, "198.51.100.7") as outsider, caller(app, "10.1.2.3") as insider:
        shown = await outsider.get(wait[url])
        assert shown.status_code == 403
        assert spec["title"] not in shown.text
        assert "<form" not in shown.text
        decision = kind.answer
        sent = await outsider.post(wait[url], data=decision)
        assert sent.status_code == 403
        assert (await get(client, wait["id"]))["status"] == "waiting"
        assert (await insider.get(wait[url])).status_code == 200
        assert (await insider.post(wait[url], data=decision)).status_code == 200
    assert (await get(client, wait["id"]))["status"] == "running"
    attempts = (await client.get(f"/api/v1/executions/{wait['id']}/resume-attempts")).json()
    refused = [a for a in attempts["data"] if a["outcome"] == "refused"]
    assert [(a["method"], a["statusCode"], a["ip"]) for a in refused] == [
        ("GET", 403, "198.51.100.7"),
        ("POST", 403, "198.51.100.7"),
    ]
    assert all(a["reason"] == "IP is not allowed to access the webhook!" for a in refused)


async def test_a_page_behind_trusted_proxies_checks_the_forwarded_address(
    settings: Settings, clock: ManualClock
) -> None:
    trusting = dataclasses.replace(settings, trusted_proxies=("127.0.0.1/32",))
    async with running_gateway(trusting, clock) as (app, admin):
        wait = await page_wait(admin, approval=APPROVAL, webhook={"allowedIps": ["10.0.0.0/8"]})
        async with caller(app, "127.0.0.1") as proxy:
            outside = {"X-Forwarded-For": "203.0.113.9"}
            refused = await proxy.post(
                wait["approvalUrl"], data={"decision": "approve"}, headers=outside
            )
            assert refused.status_code == 403
            inside = {"X-Forwarded-For": "10.9.9.9"}
            assert (await proxy.get(wait["approvalUrl"], headers=inside)).status_code == 200


@pytest.mark.parametrize("kind", KINDS)
async def test_a_bot_sees_no_details_and_cannot_answer(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, kind: Kind
) -> None:
    url, spec = kind.url, kind.spec
    wait = await page_wait(
        client, webhook={"httpMethod": "POST", "ignoreBots": True}, **{kind.name: spec}
    )
    preview = await anon.get(wait[url], headers=BOT)
    assert preview.status_code == 403
    assert spec["title"] not in preview.text
    assert "ACME" not in preview.text
    assert "<form" not in preview.text
    decision = kind.answer
    assert (await anon.post(wait[url], data=decision, headers=BOT)).status_code == 403
    assert (await get(client, wait["id"]))["status"] == "waiting"
    person = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"}
    assert (await anon.get(wait[url], headers=person)).status_code == 200
    assert (await anon.post(wait[url], data=decision, headers=person)).status_code == 200


@pytest.mark.parametrize("kind", KINDS)
async def test_a_page_asks_for_the_waits_basic_credentials(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, kind: Kind
) -> None:
    url, spec = kind.url, kind.spec
    auth = {"type": "basic", "username": "cfo", "password": "s3cret"}
    wait = await page_wait(
        client, webhook={"httpMethod": "POST", "authentication": auth}, **{kind.name: spec}
    )
    missing = await anon.get(wait[url])
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Basic realm="Webhook"'
    assert spec["title"] not in missing.text
    wrong = await anon.get(wait[url], headers=basic("cfo", "guess"))
    assert wrong.status_code == 403
    decision = kind.answer
    assert (await anon.post(wait[url], data=decision)).status_code == 401
    assert (await get(client, wait["id"]))["status"] == "waiting"
    right = basic("cfo", "s3cret")
    shown = await anon.get(wait[url], headers=right)
    assert shown.status_code == 200
    assert spec["title"] in shown.text
    assert (await anon.post(wait[url], data=decision, headers=right)).status_code == 200
    assert (await get(client, wait["id"]))["status"] == "running"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "auth",
    [
        {"type": "header", "headerName": "X-Key", "headerValue": "k"},
        {"type": "hmac", "headerName": "X-Sig", "secret": "s"},
    ],
)
async def test_a_page_with_auth_a_browser_cannot_send_is_refused_at_park(
    client: httpx.AsyncClient, kind: Kind, auth: dict[str, str]
) -> None:
    execution = await create(client)
    response = await client.post(
        f"/api/v1/executions/{execution['id']}/wait",
        json={"webhook": {"httpMethod": "POST", "authentication": auth}, kind.name: kind.spec},
    )
    assert response.status_code == 400
    message = response.json()["message"]
    assert f"authentication.type {auth['type']}" in message
    assert "browser" in message
    assert (await get(client, execution["id"]))["status"] == "running"


# Finding 7: every page action is bound to the wait it was signed for -----------------------


async def test_a_stale_reject_link_does_not_cancel_the_next_wait(
    svc: Services, clock: ManualClock, client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    first = await page_wait(client, **CANCEL, waitTill=ONE_MINUTE)
    assert (await anon.get(first["approvalUrl"])).status_code == 200
    clock.advance(120_000)
    await fire_timers(svc, first["id"])
    second = await park(client, first["id"], **CANCEL)
    stale = await anon.post(first["approvalUrl"], data={"decision": "reject", "sure": "yes"})
    assert stale.status_code == 409
    execution = await get(client, first["id"], includeData="true")
    assert execution["status"] == "waiting"
    assert len(execution["data"]["waits"]) == 2
    assert (await anon.get(second["approvalUrl"])).status_code == 200


async def held_post(
    anon: httpx.AsyncClient, url: str, body: bytes, content_type: str, between: Any
) -> httpx.Response:
    """POST ``body`` to ``url``, holding the body back until ``between()`` has run: the page
    has loaded its wait by then, and acts on it only after."""
    reading, release = asyncio.Event(), asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        reading.set()
        await release.wait()
        yield body

    sent = asyncio.create_task(
        anon.post(url, content=slow_body(), headers={"content-type": content_type})
    )
    await reading.wait()
    await between()
    release.set()
    return await sent


@pytest.mark.parametrize(
    ("spec", "url", "body"),
    [
        pytest.param(CANCEL, "approvalUrl", b"decision=reject&sure=yes", id="reject-cancels"),
        pytest.param(CANCEL, "approvalUrl", b"decision=approve", id="approve"),
        pytest.param({"form": FORM}, "resumeFormUrl", b"iban=DE89", id="form"),
    ],
)
async def test_a_page_post_held_open_across_a_new_wait_acts_on_nothing(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, spec: dict[str, Any], url: str, body: bytes
) -> None:
    first = await page_wait(client, **spec)
    eid = first["id"]

    async def end_the_wait_and_park_again() -> None:
        resumed = await client.post(f"/api/v1/executions/{eid}/resume", json={})
        assert resumed.status_code == 200
        await park(client, eid, **spec)

    stale = await held_post(anon, first[url], body, FORM_ENCODED, end_the_wait_and_park_again)
    assert stale.status_code == 409
    execution = await get(client, eid, includeData="true")
    assert execution["status"] == "waiting"
    assert [w.get("resumedBy") for w in execution["data"]["waits"]] == ["api", None]


# Finding 8: form actions are relative, so a TLS proxy's https is kept ----------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_page_actions_are_relative_behind_a_tls_proxy(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, kind: Kind
) -> None:
    url, spec = kind.url, kind.spec
    wait = await page_wait(client, **{kind.name: spec})
    public = wait[url].replace(BASE_URL, "https://gate.example.com")
    proxied = {"x-forwarded-proto": "https", "host": "gate.example.com"}
    page = await anon.get(wait[url], headers=proxied)
    action = form_action(page)
    assert action.startswith("?signature=")
    assert "http://" not in page.text
    target = urljoin(public, action)
    assert target == public
    done = await anon.post(target.replace("https://gate.example.com", BASE_URL), data=kind.answer)
    assert done.status_code == 200
    assert (await get(client, wait["id"]))["status"] == "running"


async def test_a_form_shown_again_with_errors_keeps_a_relative_action(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    wait = await page_wait(client, form=FORM)
    again = await anon.post(
        wait["resumeFormUrl"], data={"iban": ""}, headers={"x-forwarded-proto": "https"}
    )
    assert again.status_code == 400
    assert form_action(again).startswith("?signature=")


async def test_the_confirmation_page_posts_relative(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    wait = await page_wait(client, webhook={"httpMethod": "POST"})
    page = await anon.get(
        wait["resumeUrl"] + "&ref=mail",
        headers={"accept": "text/html", "x-forwarded-proto": "https"},
    )
    assert page.status_code == 200
    action = form_action(page)
    assert action.startswith("?signature=")
    assert action.endswith("&ref=mail")
    assert "http://" not in page.text
    done = await anon.post(urljoin(wait["resumeUrl"], action), data={"confirmed": "true"})
    assert done.status_code == 200
    waits = (await get(client, wait["id"], includeData="true"))["data"]["waits"]
    assert waits[0]["payload"]["query"] == {"ref": "mail"}


# Finding 9: a form upload is capped as it streams -----------------------------------------


@pytest.fixture
async def roomy(
    settings: Settings, clock: ManualClock
) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """A gateway with the default 16 MiB body limit: the form's own limit must apply."""
    big = dataclasses.replace(settings, max_body_bytes=16 * 1024 * 1024)
    async with running_gateway(big, clock) as running:
        yield running


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "xyzzy") -> bytes:
    """A multipart/form-data body of (name, filename, content) parts."""
    out = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


MULTIPART = "multipart/form-data; boundary=xyzzy"


async def test_a_chunked_upload_past_the_forms_limit_is_413_as_it_streams(
    roomy: tuple[Starlette, httpx.AsyncClient],
) -> None:
    app, admin = roomy
    wait = await page_wait(admin, form=FILE_FORM)
    head = multipart([("note", None, b"hi")])[: -len(b"--xyzzy--\r\n")]
    head += b'--xyzzy\r\nContent-Disposition: form-data; name="scan"; filename="a.bin"\r\n\r\n'
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        sent += len(head)
        yield head
        for _ in range(16 * 1024):  # 64 MiB if nobody stops it
            sent += 4096
            yield b"x" * 4096

    async with caller(app, "127.0.0.1") as anon:
        refused = await anon.post(
            wait["resumeFormUrl"], content=endless(), headers={"content-type": MULTIPART}
        )
    assert refused.status_code == 413
    assert "larger than" in refused.json()["message"]
    assert sent < 1024 * 1024  # stopped near the form's own limit, not at 16 MiB
    assert (await get(admin, wait["id"]))["status"] == "waiting"


async def test_a_declared_body_past_the_forms_limit_is_413(
    roomy: tuple[Starlette, httpx.AsyncClient],
) -> None:
    app, admin = roomy
    wait = await page_wait(admin, form=FILE_FORM)
    body = multipart([("note", None, b"hi"), ("scan", "a.bin", b"x" * (2 * 1024 * 1024))])
    async with caller(app, "127.0.0.1") as anon:
        refused = await anon.post(
            wait["resumeFormUrl"], content=body, headers={"content-type": MULTIPART}
        )
    assert refused.status_code == 413
    assert (await get(admin, wait["id"]))["status"] == "waiting"


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ([(f"junk{n}", None, b"x") for n in range(5)], "Too many fields"),
        ([("scan2", "b.bin", b"x"), ("scan3", "c.bin", b"x")], "Too many files"),
    ],
)
async def test_more_parts_than_the_form_has_fields_is_400(
    client: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    extra: list[tuple[str, str | None, bytes]],
    fragment: str,
) -> None:
    wait = await page_wait(client, form=FILE_FORM)
    body = multipart([("note", None, b"hi"), ("scan", "a.bin", b"ok"), *extra])
    refused = await anon.post(
        wait["resumeFormUrl"], content=body, headers={"content-type": MULTIPART}
    )
    assert refused.status_code == 400
    assert fragment in refused.json()["message"]
    assert (await get(client, wait["id"]))["status"] == "waiting"


async def test_a_valid_chunked_upload_within_the_limit_still_resumes(
    roomy: tuple[Starlette, httpx.AsyncClient],
) -> None:
    app, admin = roomy
    wait = await page_wait(admin, form=FILE_FORM)
    body = multipart([("note", None, b"hi"), ("scan", "a.bin", b"y" * 1000)])

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 100):
            yield body[start : start + 100]

    async with caller(app, "127.0.0.1") as anon:
        done = await anon.post(
            wait["resumeFormUrl"], content=chunks(), headers={"content-type": MULTIPART}
        )
    assert done.status_code == 200, done.text
    data = (await get(admin, wait["id"], includeData="true"))["data"]["waits"][0]["payload"]
    assert base64.b64decode(data["formData"]["scan"]["data"]) == b"y" * 1000
