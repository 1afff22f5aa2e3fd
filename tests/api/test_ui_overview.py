"""The dashboard's overview: counts by status, approvals waiting longest first, and the
deadlines of the next 24 hours as a server-drawn chart, for what the key may see."""

from __future__ import annotations

import re

import httpx
from starlette.applications import Starlette

from gateway.clock import ManualClock
from gateway.services import Services
from tests.api.test_approvers import THREE
from tests.api.test_ui import browser, signed_in
from tests.conftest import BASE_URL, create, make_key, park

HOUR = 3_600_000


async def test_the_overview_counts_lists_approvals_and_charts_deadlines(
    app: Starlette, svc: Services, client: httpx.AsyncClient, admin_key: str, clock: ManualClock
) -> None:
    await create(client)  # running
    stopped = await create(client)
    assert (await client.post(f"/api/v1/executions/{stopped['id']}/stop")).status_code == 200
    first = await create(client)
    await park(
        client,
        first["id"],
        approval={"title": "Ship <it>?", "approvers": THREE},
        waitTill="2026-01-01T03:30:00Z",
    )
    clock.advance(HOUR)
    second = await create(client)
    await park(client, second["id"], approval={"title": "Pay?"})
    plain = await create(client)
    await park(client, plain["id"], webhook={"httpMethod": "POST"}, waitTill="2026-01-01T01:20:00Z")
    later = await create(client)
    await park(client, later["id"], webhook={"httpMethod": "POST"}, waitTill="2026-01-03T00:00:00Z")
    bound_key = await make_key(svc, "admin", project="p1")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=BASE_URL,
        headers={"X-N8N-API-KEY": bound_key},
    ) as bound:
        theirs = await create(bound)
        await park(
            bound, theirs["id"], approval={"title": "Theirs?"}, waitTill="2026-01-01T02:00:00Z"
        )

    ui = await signed_in(app, admin_key)
    shown = await ui.get("/ui/overview")
    assert shown.status_code == 200
    assert shown.headers["cache-control"] == "no-store"
    text = shown.text
    assert '<a class="nav" href="/ui/overview">Overview</a>' in (await ui.get("/ui")).text
    assert '<span class="status waiting">waiting</span> <strong>5</strong>' in text
    assert '<span class="status running">running</span> <strong>1</strong>' in text
    assert '<span class="status canceled">canceled</span> <strong>1</strong>' in text
    assert "7 in all." in text
    titles = re.findall(r"<td>([^<]*)</td><td>wf-1</td>", text)
    assert titles == ["Ship &lt;it&gt;?", "Pay?", "Theirs?"]
    assert ">1 h ago</time>" in text
    assert "no deadline" in text
    assert ">in 2 h</time>" in text
    assert "3 deadlines in the next 24 hours" in text
    assert "<title>in 0 to 1 h: 1</title>" in text  # the plain wait, due in 20 min
    assert "<title>in 1 to 2 h: 1</title>" in text  # p1's approval, in 1 h
    assert "<title>in 2 to 3 h: 1</title>" in text  # the first approval, in 2 h 30 min
    assert len(re.findall(r'<rect [^>]*class="bar"', text)) == 3
    assert len(re.findall(r"<rect ", text)) == 24
    assert "<script" not in text

    mine = await signed_in(app, bound_key)
    theirs_view = (await mine.get("/ui/overview")).text
    assert '<span class="status waiting">waiting</span> <strong>1</strong>' in theirs_view
    assert "1 in all." in theirs_view
    assert "Ship" not in theirs_view
    assert "1 deadline in the next 24 hours" in theirs_view


async def test_the_overview_needs_a_session_that_may_list(app: Starlette, svc: Services) -> None:
    assert (await browser(app).get("/ui/overview")).headers["location"] == "/ui/login"
    reader = await signed_in(app, await make_key(svc, "execution:read"))
    refused = await reader.get("/ui/overview")
    assert refused.status_code == 403
    assert "This key may not list executions." in refused.text


async def test_an_empty_overview(app: Starlette, admin_key: str) -> None:
    text = (await (await signed_in(app, admin_key)).get("/ui/overview")).text
    assert "No approval is waiting." in text
    assert "0 deadlines in the next 24 hours" in text
    assert "0 in all." in text
