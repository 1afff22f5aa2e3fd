"""An approver's inbox: exactly the open requests they have not decided, oldest first, behind a
link signed for that approver and project; forged or altered links are refused and limited."""

from __future__ import annotations

import dataclasses
import html
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gateway.clock import ManualClock
from gateway.config import Settings
from gateway.services import Services
from tests.api.test_approvers import THREE, approvers_wait, decide
from tests.conftest import BASE_URL, create, make_key, park, running_gateway

HOUR = 3_600_000


def links(page: httpx.Response) -> list[str]:
    """The request links an inbox page lists, in order."""
    return [html.unescape(h) for h in re.findall(r'<h2><a href="([^"]+)"', page.text)]


@pytest.fixture
async def bound(app: Starlette, svc: Services) -> AsyncIterator[httpx.AsyncClient]:
    """A client with an admin key bound to project ``p1``."""
    key = await make_key(svc, "admin", project="p1")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL, headers={"X-N8N-API-KEY": key}
    ) as the_client:
        yield the_client


async def test_the_inbox_lists_exactly_the_undecided_open_requests_oldest_first(
    client: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    bound: httpx.AsyncClient,
    clock: ManualClock,
) -> None:
    later, older = await create(client), await create(client)
    spec: dict[str, Any] = {"title": "Deploy <b>v2</b>?", "approvers": THREE}
    first = await park(client, older["id"], approval=spec)  # no deadline
    clock.advance(HOUR)
    second = await park(
        client, later["id"], approval={**spec, "title": "Pay"}, waitTill="2026-01-01T04:00:00Z"
    )
    clock.advance(HOUR)
    not_asked = await approvers_wait(client, approvers=[{"id": "bob"}, {"id": "cy"}])
    decided = await approvers_wait(client, required=2)
    assert (await decide(client, decided["id"], "ada", "approve")).status_code == 201
    finished = await approvers_wait(client)
    assert (await decide(client, finished["id"], "bob", "reject")).status_code == 201
    requested = await approvers_wait(client, requester="ada")
    other_project = await park(bound, (await create(bound))["id"], approval=spec)

    inbox = first["inboxUrls"]["ada"]
    assert inbox == second["inboxUrls"]["ada"] == decided["inboxUrls"]["ada"]
    assert inbox.startswith("http://127.0.0.1:5678/inbox?approver=ada&signature=")
    page = await anon.get(inbox)
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-robots-tag"] == "noindex"
    assert page.headers["x-frame-options"] == "DENY"
    assert '<html lang="en">' in page.text
    assert links(page) == [first["approvalUrls"]["ada"], second["approvalUrls"]["ada"]]
    assert "Deploy &lt;b&gt;v2&lt;/b&gt;?" in page.text
    assert "no deadline" in page.text
    assert "in 2 h" in page.text
    assert "2026-01-01T04:00:00.000Z" in page.text
    assert "2 h ago" in page.text
    assert "1 h ago" in page.text
    assert "3000" not in page.text

    opened = await anon.get(links(page)[0])
    assert opened.status_code == 200
    assert 'value="approve"' in opened.text

    bobs = links(await anon.get(first["inboxUrls"]["bob"]))
    assert bobs == [
        first["approvalUrls"]["bob"],
        second["approvalUrls"]["bob"],
        not_asked["approvalUrls"]["bob"],
        decided["approvalUrls"]["bob"],
        requested["approvalUrls"]["bob"],
    ]
    p1 = other_project["inboxUrls"]["ada"]
    assert "project=p1" in p1
    assert links(await anon.get(p1)) == [other_project["approvalUrls"]["ada"]]

    assert (await anon.post(links(page)[0], data={"decision": "approve"})).status_code == 200
    assert links(await anon.get(inbox)) == [second["approvalUrls"]["ada"]]


async def test_an_empty_inbox_says_so(client: httpx.AsyncClient, anon: httpx.AsyncClient) -> None:
    wait = await approvers_wait(client)
    assert (await decide(client, wait["id"], "ada", "approve")).status_code == 201
    execution = await create(client)
    again = await park(client, execution["id"], approval={"title": "x", "approvers": THREE})
    assert (await decide(client, again["id"], "ada", "reject")).status_code == 201
    page = await anon.get(wait["inboxUrls"]["ada"])
    assert page.status_code == 200
    assert "Nothing is waiting for you." in page.text


@pytest.fixture
async def limited(
    settings: Settings, clock: ManualClock
) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    strict = dataclasses.replace(
        settings,
        rate_limit_bad_signatures=3,
        rate_limit_bad_signatures_per_execution=5,
        trusted_proxies=("127.0.0.1/32",),
    )
    async with running_gateway(strict, clock) as (app, client):
        yield app, client


def at(n: int) -> dict[str, str]:
    return {"X-Forwarded-For": f"203.0.113.{n}"}


async def test_forged_and_altered_inbox_links_are_refused_logged_and_limited(
    limited: tuple[Starlette, httpx.AsyncClient],
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, client = limited
    wait = await approvers_wait(client)
    url = wait["inboxUrls"]["ada"]
    signature = url.rsplit("signature=", 1)[1]
    approval_signature = wait["approvalUrls"]["ada"].rsplit("signature=", 1)[1]
    altered = [
        url.replace("signature=", "signature=9"),
        url.replace("approver=ada", "approver=bob"),
        url.replace("approver=ada", "approver=ada&project=p1"),
        url.replace(signature, approval_signature),
        url.replace(signature, signature[:-1]),
        url.replace(signature, "é"),
        url.split("&signature=")[0],
    ]
    with caplog.at_level(logging.INFO, logger="waitgate.signed"):
        for n, bad in enumerate(altered):
            refused = await client.get(bad, headers=at(n))
            assert refused.status_code == 401, bad
            assert "This link is not valid." in refused.text
            assert "Deploy?" not in refused.text
    assert sum(r.__dict__.get("action") == "inbox.bad_signature" for r in caplog.records) == 7
    # Per address: three failures, then 429 (and the valid link still opens from there).
    clock.advance(60_000)
    prober = at(100)
    forged = url.replace("signature=", "signature=9")
    codes = [(await client.get(forged, headers=prober)).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    assert (await client.get(url, headers=prober)).status_code == 200
    # Per inbox, across addresses: the bob inbox's budget is its own.
    clock.advance(60_000)
    bob = wait["inboxUrls"]["bob"].replace("signature=", "signature=9")
    codes = [(await client.get(bob, headers=at(150 + n))).status_code for n in range(7)]
    assert codes == [401] * 5 + [429] * 2
    assert (await client.get(wait["inboxUrls"]["bob"], headers=at(99))).status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "",
        "signature=x",
        "approver=&signature=x",
        "approver=a%20b&signature=x",
        "approver=ada&approver=bob&signature=x",
        "approver=ada&project=p1&project=p2&signature=x",
        "approver=ada&signature=x&signature=y",
        "approver=ada&project=&signature=x",
        f"approver={'a' * 65}&signature=x",
    ],
)
async def test_malformed_inbox_links_are_400_naming_the_problem(
    anon: httpx.AsyncClient, query: str
) -> None:
    page = await anon.get(f"/inbox?{query}")
    assert page.status_code == 400
    assert "This link is not valid: " in page.text
    assert page.headers["cache-control"] == "no-store"


async def test_only_resuming_principals_see_inbox_urls(
    client: httpx.AsyncClient, svc: Services, app: Starlette
) -> None:
    wait = await approvers_wait(client)
    key = await make_key(svc, "execution:read")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL, headers={"X-N8N-API-KEY": key}
    ) as reader:
        seen = (await reader.get(f"/api/v1/executions/{wait['id']}")).json()
    assert "inboxUrls" not in seen
    assert "approvalUrls" not in seen
    assert set(wait["inboxUrls"]) == {"ada", "bob", "cy"}
