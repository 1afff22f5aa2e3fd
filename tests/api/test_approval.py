"""Approval pages: the question, Approve / Reject exactly once, and the page after."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import create, get, park


async def approval_wait(client: httpx.AsyncClient, **approval: Any) -> dict[str, Any]:
    execution = await create(client)
    return await park(
        client,
        execution["id"],
        approval={"title": "Buy a laptop?", "description": "For <b>Ada</b>, 1,200 EUR", **approval},
    )


async def test_approve_resumes_once_and_the_page_then_says_so(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    wait = await approval_wait(client)
    assert wait["status"] == "waiting"
    url = wait["approvalUrl"]
    assert url.startswith(f"http://127.0.0.1:5678/approval/{wait['id']}?signature=")
    page = await anon.get(url)
    assert page.status_code == 200
    assert "Buy a laptop?" in page.text
    assert "For &lt;b&gt;Ada&lt;/b&gt;" in page.text  # escaped, never injected
    assert 'value="approve"' in page.text
    assert page.headers["cache-control"] == "no-store"
    done = await anon.post(url, data={"decision": "approve", "comment": "fine"})
    assert done.status_code == 200
    assert "Approved" in done.text
    resumed = (await get(client, wait["id"], includeData="true"))["data"]["waits"][0]
    assert resumed["resumedBy"] == "form"
    assert resumed["payload"]["approved"] is True
    assert resumed["payload"]["comment"] == "fine"
    again = await anon.get(url)
    assert again.status_code == 409
    assert "already approved" in again.text
    assert 'value="approve"' not in again.text
    twice = await anon.post(url, data={"decision": "reject"})
    assert twice.status_code == 409


async def test_reject_resumes_or_cancels_as_configured(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    resume = await approval_wait(client)
    await anon.post(resume["approvalUrl"], data={"decision": "reject"})
    waits = (await get(client, resume["id"], includeData="true"))["data"]["waits"]
    assert waits[0]["payload"]["approved"] is False
    cancel = await approval_wait(client, onReject="cancel")
    rejected = await anon.post(cancel["approvalUrl"], data={"decision": "reject", "sure": "yes"})
    assert "Rejected" in rejected.text
    assert (await get(client, cancel["id"]))["status"] == "canceled"


async def test_the_page_url_is_its_own_signature(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    wait = await approval_wait(client)
    page_token = wait["approvalUrl"].split("signature=")[1]
    resume_token = wait["resumeUrl"].split("signature=")[1]
    assert page_token != resume_token
    swapped = await anon.get(f"/approval/{wait['id']}?signature={resume_token}")
    assert swapped.status_code == 401
    assert (await anon.get(f"/approval/{wait['id']}?signature=1.x")).status_code == 401
    assert (await anon.get("/approval/abc?signature=1.x")).status_code == 401
    bad = await anon.post(wait["approvalUrl"], data={"decision": "maybe"})
    assert bad.status_code == 400
    assert (await get(client, wait["id"]))["status"] == "waiting"


@pytest.mark.parametrize(
    ("approval", "fragment"),
    [({"title": ""}, "approval.title"), ({"title": "x", "onReject": "shrug"}, "Invalid request")],
)
async def test_bad_approval_settings_are_400(
    client: httpx.AsyncClient, approval: dict[str, Any], fragment: str
) -> None:
    execution = await create(client)
    response = await client.post(
        f"/api/v1/executions/{execution['id']}/wait", json={"approval": approval}
    )
    assert response.status_code == 400
    assert fragment in response.json()["message"]
