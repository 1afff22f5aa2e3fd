"""Destructive actions ask "Are you sure?" first, without JavaScript: a reject that cancels the
workflow on the approval page, and Stop in the dashboard. Only the confirming POST acts
(issue 18, "Pages and dashboard")."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import httpx
from starlette.applications import Starlette

from tests.api.test_ui import csrf, signed_in, sure
from tests.conftest import create, get, park

CANCEL = {"title": "Delete the account?", "onReject": "cancel"}


def form_action(html: str) -> str:
    found = re.search(r'<form method="post" action="([^"]+)"', html)
    assert found is not None
    return found.group(1).replace("&amp;", "&")


async def test_a_cancelling_reject_asks_first_and_only_the_confirmation_acts(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    execution = await create(client)
    wait = await park(client, execution["id"], approval=CANCEL)
    url = wait["approvalUrl"]
    asked = await anon.post(url, data={"decision": "reject", "comment": "no <way>"})
    assert asked.status_code == 200
    assert "Are you sure?" in asked.text
    assert "<script" not in asked.text
    assert 'value="no &lt;way&gt;"' in asked.text  # the comment is carried, escaped
    assert 'name="sure" value="yes"' in asked.text
    assert 'href="?signature=' in asked.text  # Back: the page again
    assert (await get(client, execution["id"]))["status"] == "waiting"
    confirmed = await anon.post(
        urljoin(url, form_action(asked.text)),
        data={"decision": "reject", "sure": "yes", "comment": "no <way>"},
    )
    assert "Rejected" in confirmed.text
    assert (await get(client, execution["id"]))["status"] == "canceled"


async def test_a_reject_that_resumes_and_an_approve_act_at_once(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    execution = await create(client)
    wait = await park(client, execution["id"], approval={"title": "Pay?"})
    rejected = await anon.post(wait["approvalUrl"], data={"decision": "reject"})
    assert "Are you sure?" not in rejected.text
    assert "Rejected" in rejected.text


async def test_stop_in_the_dashboard_asks_first(
    app: Starlette, client: httpx.AsyncClient, admin_key: str
) -> None:
    execution = await create(client)
    await park(client, execution["id"], webhook={})
    ui = await signed_in(app, admin_key)
    token = csrf((await ui.get(f"/ui/executions/{execution['id']}")).text)
    asked = await ui.post(f"/ui/executions/{execution['id']}/stop", data={"csrf": token})
    assert asked.status_code == 200
    assert "Are you sure?" in asked.text
    assert f'href="/ui/executions/{execution["id"]}">Back' in asked.text
    assert (await get(client, execution["id"]))["status"] == "waiting"
    forged = await ui.post(
        f"/ui/executions/{execution['id']}/stop", data={"csrf": token, "sure": "yes"}
    )
    assert "Are you sure?" in forged.text  # an unsigned field is no confirmation
    other = await create(client)
    await park(client, other["id"], webhook={})
    elsewhere = await ui.post(
        f"/ui/executions/{other['id']}/stop", data={"csrf": token, "sure": sure(asked.text)}
    )
    assert "Are you sure?" in elsewhere.text  # signed for another execution
    assert (await get(client, other["id"]))["status"] == "waiting"
    stopped = await ui.post(
        f"/ui/executions/{execution['id']}/stop", data={"csrf": token, "sure": sure(asked.text)}
    )
    assert stopped.status_code == 303
    assert (await get(client, execution["id"]))["status"] == "canceled"
