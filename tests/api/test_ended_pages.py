"""A person on a resume URL, approval or form page reads what happened, in words: "Done" after
the confirmation page's POST; used, expired or canceled for a link that no longer works. Clients
that are not browsers keep n8n's JSON answers (issue 18, "Pages and dashboard")."""

from __future__ import annotations

from typing import Any

import httpx

from gateway.clock import ManualClock
from gateway.services import Services
from tests.conftest import create, fire_timers, park

BROWSER = {"accept": "text/html,application/xhtml+xml"}
DEADLINE = "2026-01-01T00:00:01.000Z"
APPROVAL = {"title": "Pay?"}
FORM = {"title": "Payout", "fields": [{"label": "IBAN", "name": "iban"}]}


async def parked(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    """A new execution parked on a POST-only wait."""
    execution = await create(client)
    return await park(client, execution["id"], webhook={"httpMethod": "POST"}, **fields)


async def test_the_confirmation_post_ends_on_a_done_page(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    wait = await parked(client)
    done = await anon.post(wait["resumeUrl"], data={"confirmed": "true"}, headers=BROWSER)
    assert done.status_code == 200
    assert done.headers["content-type"].startswith("text/html")
    assert "Done." in done.text
    assert "Workflow was started" not in done.text


async def test_an_api_caller_still_gets_the_configured_answer(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    wait = await parked(client)
    answer = await anon.post(wait["resumeUrl"], data={"confirmed": "true"})
    assert answer.status_code == 200
    assert answer.json() == {"message": "Workflow was started"}


async def test_a_used_link_says_so_to_a_browser_and_json_to_a_client(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    wait = await parked(client)
    assert (await anon.post(wait["resumeUrl"])).status_code == 200
    again = await anon.get(wait["resumeUrl"], headers=BROWSER)
    assert again.status_code == 409
    assert "This link was already used." in again.text
    assert "{" not in again.text.split("<main>")[1]
    raw = await anon.post(wait["resumeUrl"])
    assert raw.status_code == 409
    assert "running already" in raw.json()["message"]


async def test_an_expired_link_says_when_it_expired(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, svc: Services, clock: ManualClock
) -> None:
    wait = await parked(client, waitTill=DEADLINE)
    clock.set(1_767_225_601_000)
    await fire_timers(svc, wait["id"])
    shown = await anon.get(wait["resumeUrl"], headers=BROWSER)
    assert "This request expired on 2026-01-01 00:00 UTC." in shown.text
    assert "already used" not in shown.text


async def test_a_canceled_request_says_so_on_every_page(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    wait = await parked(client, approval=APPROVAL)
    assert (await client.post(f"/api/v1/executions/{wait['id']}/stop")).status_code == 200
    for url in (wait["resumeUrl"], wait["approvalUrl"]):
        shown = await anon.get(url, headers=BROWSER)
        assert "This request was canceled." in shown.text, url


async def test_an_expired_approval_or_form_is_never_called_answered(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, svc: Services, clock: ManualClock
) -> None:
    approval = await parked(client, waitTill=DEADLINE, approval=APPROVAL)
    form = await parked(client, waitTill=DEADLINE, form=FORM)
    clock.set(1_767_225_601_000)
    await fire_timers(svc, approval["id"])
    await fire_timers(svc, form["id"])
    for url in (approval["approvalUrl"], form["resumeFormUrl"]):
        shown = await anon.get(url, headers=BROWSER)
        assert shown.status_code == 409
        assert "This request expired on 2026-01-01 00:00 UTC." in shown.text, url
        assert "answered" not in shown.text
        assert "submitted" not in shown.text


async def test_the_pages_say_by_when_to_answer(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    deadline = "2026-01-02T00:00:00.000Z"  # a day after the ManualClock's start
    execution = await create(client)
    approval = await park(client, execution["id"], waitTill=deadline, approval={"title": "Pay?"})
    page = await anon.get(approval["approvalUrl"])
    assert page.status_code == 200
    assert "Answer by" in page.text
    assert f'<time datetime="{deadline}"' in page.text
    other = await create(client)
    form = await park(
        client, other["id"], waitTill=deadline, form={"title": "T", "fields": [{"label": "A"}]}
    )
    shown = await anon.get(form["resumeFormUrl"])
    assert "Answer by" in shown.text
    assert f'<time datetime="{deadline}"' in shown.text
    open_ended = await park(client, (await create(client))["id"], approval={"title": "Any time"})
    assert "Answer by" not in (await anon.get(open_ended["approvalUrl"])).text
