"""Engine-controlled answers on the gateway's origin, and the dashboard's own defences.

Issue 11, findings 2 (HTML answers on the gateway's origin took over a signed-in dashboard),
15 (``respond`` with a 1xx status) and 18 (dashboard flash, logout, login CSRF, framing).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re

import httpx
import pytest
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.clock import ManualClock
from gateway.config import Settings
from gateway.domain import WebhookSpec
from gateway.errors import ConfigError
from gateway.services import Services
from tests.api.test_response_modes import held_call
from tests.api.test_ui import browser, csrf, signed_in, sure
from tests.conftest import BASE_URL, create, get, make_key, park, running_gateway

ATTACK_HTML = "<script>fetch('/ui').then(r => r.text()).then(t => document.title = t)</script>"


def sandboxed(response: httpx.Response) -> None:
    """The answer can run no script and is never sniffed into another type."""
    policy = response.headers.get("content-security-policy", "")
    directives = [d.strip() for d in policy.split(";")]
    sandbox = next((d for d in directives if d.split(" ")[0] == "sandbox"), None)
    assert sandbox is not None, f"no sandbox in {policy!r} ({response.status_code})"
    assert "allow-scripts" not in sandbox
    assert "allow-same-origin" not in sandbox
    assert response.headers.get("x-content-type-options") == "nosniff"


async def project_writer(app: Starlette, svc: Services) -> httpx.AsyncClient:
    """A client with a project-bound key that holds only ``execution:write``."""
    key = await make_key(svc, "execution:write", project="tenant-b")
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=BASE_URL,
        headers={"X-N8N-API-KEY": key},
    )


# --- finding 2: what an engine may put into an answer ------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Set-Cookie",
        "set-cookie2",
        "Content-Security-Policy",
        "X-Frame-Options",
        "X-Content-Type-Options",
        "Strict-Transport-Security",
        "Access-Control-Allow-Origin",
        "Transfer-Encoding",
        "Connection",
        "Keep-Alive",
        "Upgrade",
        "Proxy-Authenticate",
        "Content-Length",
        "Clear-Site-Data",
        "NEL",
        "Bad Name",
    ],
)
async def test_park_refuses_forbidden_response_headers(
    app: Starlette, svc: Services, client: httpx.AsyncClient, name: str
) -> None:
    async with await project_writer(app, svc) as attacker:
        execution = await create(attacker)
        headers = {"content-type": "text/html", name: "x"}
        refused = await attacker.post(
            f"/api/v1/executions/{execution['id']}/wait",
            json={"webhook": {"responseHeaders": headers, "responseData": ATTACK_HTML}},
        )
    assert refused.status_code == 400, refused.text
    assert name in refused.json()["message"]
    assert (await get(client, execution["id"]))["status"] == "running"


async def test_html_answer_is_sandboxed(
    app: Starlette, svc: Services, anon: httpx.AsyncClient
) -> None:
    async with await project_writer(app, svc) as attacker:
        execution = await create(attacker)
        parked = await park(
            attacker,
            execution["id"],
            webhook={"responseHeaders": {"Content-Type": "text/html"}, "responseData": ATTACK_HTML},
        )
    answer = await anon.get(parked["resumeUrl"], headers={"accept": "text/html"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.text == ATTACK_HTML
    assert answer.headers["content-security-policy"] == "sandbox"
    sandboxed(answer)
    assert "set-cookie" not in answer.headers


async def test_respond_refuses_forbidden_headers_and_its_html_is_sandboxed(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, svc: Services
) -> None:
    execution = await create(client)
    parked = await park(
        client, execution["id"], webhook={"httpMethod": "POST", "responseMode": "responseNode"}
    )
    call = await held_call(anon, svc, parked["id"], parked["resumeUrl"])
    respond = f"/api/v1/executions/{parked['id']}/respond"
    for name in ("Set-Cookie", "Content-Security-Policy", "Access-Control-Allow-Credentials"):
        refused = await client.post(respond, json={"headers": {name: "x"}, "body": "hi"})
        assert refused.status_code == 400, refused.text
        assert name in refused.json()["message"]
    html = {"binary": {"data": "PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", "mimeType": "text/html"}}
    sent = await client.post(respond, json={"headers": {"X-Receipt": "r-1"}, "body": html})
    assert sent.status_code == 200, sent.text
    answer = await asyncio.wait_for(call, 5)
    assert answer.content == b"<script>alert(1)</script>"
    assert answer.headers["x-receipt"] == "r-1"
    sandboxed(answer)


async def test_every_answer_under_webhook_waiting_is_sandboxed(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    execution = await create(client)
    early = await anon.post(execution["resumeUrl"], json={"early": True})
    assert early.status_code == 202
    sandboxed(early)
    parked = await park(client, execution["id"], webhook={"httpMethod": "POST"})
    url = parked["resumeUrl"]
    refused = await anon.post(url.replace("signature=", "signature=x"))
    assert refused.status_code == 401
    sandboxed(refused)
    missing = await anon.post("/webhook-waiting/99999999?signature=abc")
    sandboxed(missing)
    preflight = await anon.options(url)
    assert preflight.status_code == 204
    sandboxed(preflight)
    second = await create(client)
    replayable = await park(client, second["id"], webhook={"httpMethod": "POST"})
    first = await anon.post(replayable["resumeUrl"], headers={"Idempotency-Key": "k1"})
    replay = await anon.post(replayable["resumeUrl"], headers={"Idempotency-Key": "k1"})
    assert replay.headers["idempotent-replayed"] == "true"
    for answer in (first, replay):
        sandboxed(answer)
    late = await anon.post(replayable["resumeUrl"])
    assert late.status_code == 409
    sandboxed(late)
    head = await anon.head(url)
    sandboxed(head)


async def test_confirmation_page_allows_its_own_form_but_no_script(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    execution = await create(client)
    parked = await park(client, execution["id"], webhook={"httpMethod": "POST"})
    page = await anon.get(parked["resumeUrl"], headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "<form" in page.text
    sandboxed(page)
    policy = page.headers["content-security-policy"]
    assert "sandbox allow-forms" in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["x-frame-options"] == "DENY"


async def test_held_answer_is_sandboxed(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, svc: Services
) -> None:
    execution = await create(client)
    parked = await park(
        client, execution["id"], webhook={"httpMethod": "POST", "responseMode": "lastNode"}
    )
    call = await held_call(anon, svc, parked["id"], parked["resumeUrl"])
    finish = await client.post(
        f"/api/v1/executions/{parked['id']}/finish", json={"status": "success", "data": {"a": 1}}
    )
    assert finish.status_code == 200
    answer = await asyncio.wait_for(call, 5)
    assert answer.json() == {"a": 1}
    sandboxed(answer)


async def test_stored_answer_headers_written_before_the_fix_are_not_sent(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, svc: Services
) -> None:
    """A wait parked by an older version with a cookie in its answer never plants it."""
    execution = await create(client)
    spec = WebhookSpec(
        methods=("POST",),
        response_headers={
            "Set-Cookie": "waitgate_ui=planted; Path=/ui",
            "Content-Security-Policy": "sandbox allow-scripts allow-same-origin",
            "X-Kept": "yes",
        },
    )
    outcome = await svc.store.park(execution["id"], None, spec, svc.clock.now_ms())
    assert outcome
    answer = await anon.post((await get(client, execution["id"]))["resumeUrl"])
    assert answer.status_code == 200
    assert "set-cookie" not in answer.headers
    assert answer.headers["x-kept"] == "yes"
    assert answer.headers["content-security-policy"] == "sandbox"


# --- finding 2: the dashboard cookie ------------------------------------------------------------


async def test_dashboard_cookie_is_secure_prefixed_and_scoped_to_ui_behind_https(
    settings: Settings, clock: ManualClock
) -> None:
    https = dataclasses.replace(settings, public_url="https://gw.example.com")
    async with running_gateway(https, clock) as (app, _):
        key = await make_key(app.state.services)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://gw.example.com"
        ) as ui:
            form = await ui.get("/ui/login")
            signed = await ui.post("/ui/login", data={"api_key": key, "csrf": csrf(form.text)})
            assert signed.status_code == 303, signed.text
            (cookie,) = [c for c in signed.headers.get_list("set-cookie") if "waitgate_ui=" in c]
            assert cookie.startswith("__Secure-waitgate_ui=")
            assert "Secure" in cookie
            assert "HttpOnly" in cookie
            assert "Path=/ui" in cookie
            assert "Domain" not in cookie
            assert (await ui.get("/ui")).status_code == 200


async def test_separate_ui_origin(settings: Settings, clock: ManualClock) -> None:
    separate = dataclasses.replace(settings, ui_origin="http://admin.internal:8080")
    async with running_gateway(separate, clock) as (app, admin):
        key = await make_key(app.state.services)
        parked = await park(admin, (await create(admin))["id"], webhook={"httpMethod": "POST"})
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://admin.internal:8080") as ui,
            httpx.AsyncClient(transport=transport, base_url=BASE_URL) as public,
        ):
            assert (await public.get("/ui/login")).status_code == 404
            form = await ui.get("/ui/login")
            assert form.status_code == 200
            signed = await ui.post("/ui/login", data={"api_key": key, "csrf": csrf(form.text)})
            assert signed.status_code == 303
            assert "Domain" not in signed.headers["set-cookie"]
            assert (await ui.get("/ui")).status_code == 200
            moved = parked["resumeUrl"].replace(BASE_URL, "http://admin.internal:8080")
            assert (await ui.post(moved)).status_code == 404  # no answer on the UI's origin
            assert (await ui.get("/api/v1/executions")).status_code == 404
            assert (await public.post(parked["resumeUrl"])).status_code == 200


@pytest.mark.parametrize(
    "origin", ["http://127.0.0.1:9999", "ftp://admin.internal", "https://admin.internal/ui"]
)
def test_ui_origin_must_be_another_host(settings: Settings, origin: str) -> None:
    with pytest.raises(ConfigError, match="WAITGATE_UI_ORIGIN"):
        create_app(dataclasses.replace(settings, ui_origin=origin))


# --- finding 15: engine-controlled status codes -------------------------------------------------


@pytest.mark.parametrize("status", [100, 101, 199])
async def test_respond_refuses_informational_status(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, svc: Services, status: int
) -> None:
    execution = await create(client)
    parked = await park(
        client, execution["id"], webhook={"httpMethod": "POST", "responseMode": "responseNode"}
    )
    call = await held_call(anon, svc, parked["id"], parked["resumeUrl"])
    respond = f"/api/v1/executions/{parked['id']}/respond"
    refused = await client.post(respond, json={"statusCode": status, "body": "HTTP/1.1 200 OK"})
    assert refused.status_code == 400
    assert "statusCode" in refused.json()["message"]
    assert (await client.post(respond, json={"statusCode": 200, "body": "ok"})).status_code == 200
    assert (await asyncio.wait_for(call, 5)).status_code == 200


@pytest.mark.parametrize("status", [204, 304])
async def test_bodiless_status_codes_carry_no_body(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, svc: Services, status: int
) -> None:
    execution = await create(client)
    with_body = await client.post(
        f"/api/v1/executions/{execution['id']}/wait",
        json={"webhook": {"responseCode": status, "responseData": "smuggled"}},
    )
    assert with_body.status_code == 400
    assert str(status) in with_body.json()["message"]
    parked = await park(
        client, execution["id"], webhook={"httpMethod": "POST", "responseCode": status}
    )
    answer = await anon.post(parked["resumeUrl"])
    assert answer.status_code == status
    assert answer.content == b""
    second = await create(client)
    held = await park(
        client, second["id"], webhook={"httpMethod": "POST", "responseMode": "responseNode"}
    )
    call = await held_call(anon, svc, held["id"], held["resumeUrl"])
    respond = f"/api/v1/executions/{held['id']}/respond"
    refused = await client.post(respond, json={"statusCode": status, "body": "smuggled"})
    assert refused.status_code == 400
    assert (await client.post(respond, json={"statusCode": status})).status_code == 200
    assert (await asyncio.wait_for(call, 5)).content == b""


# --- finding 18: the dashboard ------------------------------------------------------------------


async def test_done_text_is_not_reflected(app: Starlette, client: httpx.AsyncClient) -> None:
    execution = await create(client)
    ui = await signed_in(app, client.headers["X-N8N-API-KEY"])
    forged = await ui.get(
        f"/ui/executions/{execution['id']}",
        params={"done": "<b>Your session expired: sign in at evil.example</b>"},
    )
    assert forged.status_code == 200
    assert "evil.example" not in forged.text
    assert 'role="status"' not in forged.text
    token = csrf(forged.text)
    url = f"/ui/executions/{execution['id']}/stop"
    asked = await ui.post(url, data={"csrf": token})
    stopped = await ui.post(url, data={"csrf": token, "sure": sure(asked.text)})
    assert stopped.status_code == 303
    shown = await ui.get(stopped.headers["location"])
    assert "Stop: done." in shown.text


async def test_logout_needs_the_csrf_token(app: Starlette, client: httpx.AsyncClient) -> None:
    ui = await signed_in(app, client.headers["X-N8N-API-KEY"])
    token = csrf((await ui.get("/ui")).text)
    for data in ({}, {"csrf": "forged"}):
        refused = await ui.post("/ui/logout", data=data)
        assert refused.status_code == 403
        assert "set-cookie" not in refused.headers
    assert (await ui.get("/ui")).status_code == 200  # still signed in
    assert (await ui.get("/ui/logout")).status_code == 405
    out = await ui.post("/ui/logout", data={"csrf": token})
    assert out.status_code == 303
    assert (await ui.get("/ui")).headers["location"] == "/ui/login"


async def test_login_needs_its_csrf_token(app: Starlette, admin_key: str) -> None:
    async with browser(app) as forger:
        missing = await forger.post("/ui/login", data={"api_key": admin_key})
        assert missing.status_code == 403
        assert not any("waitgate_ui=" in c for c in missing.headers.get_list("set-cookie"))
        form = await forger.get("/ui/login")
        token = csrf(form.text)
        wrong = await forger.post("/ui/login", data={"api_key": admin_key, "csrf": token + "x"})
        assert wrong.status_code == 403
    async with browser(app) as other:  # a token without the cookie it was issued with
        stolen = await other.post("/ui/login", data={"api_key": admin_key, "csrf": token})
        assert stolen.status_code == 403
        form = await other.get("/ui/login")
        ok = await other.post("/ui/login", data={"api_key": admin_key, "csrf": csrf(form.text)})
        assert ok.status_code == 303


async def test_pages_refuse_to_be_framed(
    app: Starlette, client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    execution = await create(client)
    approval = await park(client, execution["id"], approval={"title": "Pay?"})
    second = await create(client)
    form = await park(client, second["id"], form={"title": "T", "fields": [{"label": "A"}]})
    ui = await signed_in(app, client.headers["X-N8N-API-KEY"])
    pages = [
        await anon.get("/ui/login"),
        await ui.get("/ui"),
        await ui.get(f"/ui/executions/{execution['id']}"),
        await anon.get(approval["approvalUrl"]),
        await anon.get(form["resumeFormUrl"]),
        await anon.get("/api/v1/docs"),
    ]
    for page in pages:
        assert page.status_code == 200, page.url
        assert page.headers["x-frame-options"] == "DENY"
        assert re.search(r"frame-ancestors 'none'", page.headers["content-security-policy"])


async def test_an_unexpected_failure_under_webhook_waiting_is_sandboxed_json(
    app: Starlette, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in the resume path answers the one JSON error shape with the sandbox headers (the
    server's own 500 page is sent outside every middleware), and is still raised to be logged."""
    execution = await create(client)
    parked = await park(client, execution["id"], webhook={"httpMethod": "POST"})

    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("gateway.routes.webhook.answer_call", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as caller:
        answer = await caller.post(parked["resumeUrl"], json={"x": 1})
    assert answer.status_code == 500
    assert answer.json() == {"message": "Internal error", "code": 500}
    assert "a bug" not in answer.text
    sandboxed(answer)
