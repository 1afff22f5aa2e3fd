"""The dashboard at /ui: sign in with a key, list and filter, inspect, stop / retry / resume."""

from __future__ import annotations

import re

import httpx
from starlette.applications import Starlette

from gateway.clock import ManualClock
from gateway.services import Services
from tests.conftest import BASE_URL, create, make_key, park


def browser(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL)


async def signed_in(app: Starlette, key: str) -> httpx.AsyncClient:
    ui = browser(app)
    form = await ui.get("/ui/login")
    answer = await ui.post("/ui/login", data={"api_key": key, "csrf": csrf(form.text)})
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    return ui


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def sure(html: str) -> str:
    """The signed field of the "Are you sure?" step."""
    found = re.search(r'name="sure" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


async def test_sign_in_list_filter_and_act(
    app: Starlette, client: httpx.AsyncClient, admin_key: str
) -> None:
    waiting = await create(client, customData={"tenant": "t1"})
    await park(client, waiting["id"], waitTill="2026-01-01T01:00:00Z", webhook={})
    other = await create(client, customData={"tenant": "t2"})
    await client.post(f"/api/v1/executions/{other['id']}/finish", json={"status": "error"})
    anonymous = browser(app)
    assert (await anonymous.get("/ui")).headers["location"] == "/ui/login"
    form = await anonymous.get("/ui/login")
    refused = await anonymous.post(
        "/ui/login", data={"api_key": "wg_wrong", "csrf": csrf(form.text)}
    )
    assert refused.status_code == 401
    assert "not valid" in refused.text

    ui = await signed_in(app, admin_key)
    listing = await ui.get("/ui")
    assert listing.status_code == 200
    assert f'href="/ui/executions/{waiting["id"]}"' in listing.text
    assert 'datetime="2026-01-01T01:00:00.000Z"' in listing.text  # the deadline, as people
    assert ">in 1 h</time>" in listing.text  # read it (the full instant in its tooltip)
    assert "<script" not in listing.text
    filtered = await ui.get("/ui", params={"cd": "tenant=t2"})
    assert f'/ui/executions/{other["id"]}"' in filtered.text
    assert f'/ui/executions/{waiting["id"]}"' not in filtered.text
    by_status = await ui.get("/ui", params={"status": "waiting"})
    assert f'/ui/executions/{other["id"]}"' not in by_status.text

    detail = await ui.get(f"/ui/executions/{waiting['id']}")
    assert detail.status_code == 200
    assert "tenant" in detail.text
    assert "Resume now" in detail.text
    assert "Stop" in detail.text
    token = csrf(detail.text)
    forged = await ui.post(f"/ui/executions/{waiting['id']}/stop", data={"csrf": "nope"})
    assert forged.status_code == 403
    asked = await ui.post(f"/ui/executions/{waiting['id']}/stop", data={"csrf": token})
    stopped = await ui.post(
        f"/ui/executions/{waiting['id']}/stop", data={"csrf": token, "sure": sure(asked.text)}
    )
    assert stopped.status_code == 303
    assert (await client.get(f"/api/v1/executions/{waiting['id']}")).json()["status"] == "canceled"
    retried = await ui.post(f"/ui/executions/{waiting['id']}/retry", data={"csrf": token})
    target = retried.headers["location"]
    assert target.startswith("/ui/executions/")
    assert "Retry" in (await ui.get(target)).text
    out = await ui.post("/ui/logout", data={"csrf": token})
    assert out.status_code == 303


async def test_resume_button_and_scopes(
    app: Starlette, client: httpx.AsyncClient, svc: Services
) -> None:
    execution = await create(client)
    await park(client, execution["id"], webhook={"httpMethod": "POST"})
    reader = await signed_in(app, await make_key(svc, "execution:read", "execution:list"))
    page = await reader.get(f"/ui/executions/{execution['id']}")
    assert "Resume now" not in page.text  # no button the key could not use
    denied = await reader.post(
        f"/ui/executions/{execution['id']}/resume", data={"csrf": csrf(page.text)}
    )
    assert denied.status_code == 403
    admin = await signed_in(app, await make_key(svc))
    page = await admin.get(f"/ui/executions/{execution['id']}")
    resumed = await admin.post(
        f"/ui/executions/{execution['id']}/resume", data={"csrf": csrf(page.text)}
    )
    assert resumed.status_code == 303
    after = await client.get(
        f"/api/v1/executions/{execution['id']}", params={"includeData": "true"}
    )
    assert after.json()["data"]["waits"][0]["resumedBy"] == "api"
    missing = await admin.get("/ui/executions/999")
    assert missing.status_code == 404


async def test_times_read_as_people_read_them_and_no_deadline_is_said(
    app: Starlette, client: httpx.AsyncClient, admin_key: str, clock: ManualClock
) -> None:
    forever = await park(client, (await create(client))["id"], webhook={"httpMethod": "POST"})
    clock.advance(2 * 86_400_000)
    ui = await signed_in(app, admin_key)
    for url in ("/ui?status=waiting", f"/ui/executions/{forever['id']}"):
        shown = await ui.get(url)
        assert shown.status_code == 200
        assert "no deadline" in shown.text
        assert "3000" not in shown.text
        assert ">2 days ago</time>" in shown.text
