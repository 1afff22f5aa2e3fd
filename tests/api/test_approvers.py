"""Named approvers: quorum, rejection rules, personal links, decisions by API, and onTimeout."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from starlette.applications import Starlette

from gateway.clock import ManualClock
from gateway.config import Settings
from gateway.origins import origin_of
from gateway.services import Services
from tests.api.test_ui import signed_in
from tests.conftest import create, fire_timers, get, make_key, park, running_gateway

THREE = [{"id": "ada", "name": "Ada", "email": "ada@example.com"}, {"id": "bob"}, {"id": "cy"}]
ONE_MINUTE = "2026-01-01T00:01:00Z"  # the ManualClock starts at 2026-01-01T00:00:00Z


async def approvers_wait(client: httpx.AsyncClient, **approval: Any) -> dict[str, Any]:
    execution = await create(client)
    spec = {"title": "Deploy?", "approvers": THREE, **approval}
    fields: dict[str, Any] = {"approval": spec}
    if "waitTill" in approval:
        fields["waitTill"] = spec.pop("waitTill")
    return await park(client, execution["id"], **fields)


async def payload(client: httpx.AsyncClient, eid: int) -> dict[str, Any]:
    waits = (await get(client, eid, includeData="true"))["data"]["waits"]
    assert waits[0]["resumedAt"] is not None
    found: dict[str, Any] = waits[0]["payload"]
    return found


async def decide(
    client: httpx.AsyncClient, eid: int, approver: str, decision: str = "approve", **more: Any
) -> httpx.Response:
    body = {"approver": approver, "decision": decision, **more}
    return await client.post(f"/api/v1/executions/{eid}/decisions", json=body)


async def test_two_of_three_approve_on_their_pages_and_the_wait_resumes_once(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    wait = await approvers_wait(client, required=2)
    urls = wait["approvalUrls"]
    assert set(urls) == {"ada", "bob", "cy"}
    assert urls["ada"].startswith(f"http://127.0.0.1:5678/approval/{wait['id']}?approver=ada&")
    page = await anon.get(urls["ada"])
    assert page.status_code == 200
    assert "2 more approvals needed" in page.text
    assert 'value="approve"' in page.text
    first = await anon.post(urls["ada"], data={"decision": "approve", "comment": "ok"})
    assert first.status_code == 200
    assert "recorded" in first.text
    assert (await get(client, wait["id"]))["status"] == "waiting"
    shown = await anon.get(urls["bob"])
    assert "1 more approval needed" in shown.text
    assert "approved" in shown.text
    second = await anon.post(urls["bob"], data={"decision": "approve"})
    assert second.status_code == 200
    assert "Approved" in second.text
    assert (await get(client, wait["id"]))["status"] == "running"
    body = await payload(client, wait["id"])
    assert body["approved"] is True
    assert body["option"] == "approve"
    assert body["timedOut"] is False
    assert body["resumedBy"] == "approval"
    assert [(d["approver"], d["decision"], d["via"]) for d in body["decisions"]] == [
        ("ada", "approve", "page"),
        ("bob", "approve", "page"),
    ]
    assert body["decisions"][0]["comment"] == "ok"
    late = await anon.post(urls["cy"], data={"decision": "reject"})
    assert late.status_code == 409
    attempts = (await client.get(f"/api/v1/executions/{wait['id']}/resume-attempts")).json()
    reasons = {a["reason"] for a in attempts["data"] if a["outcome"] == "accepted"}
    assert reasons == {"approver ada decided approve", "approver bob decided approve"}


async def test_one_reject_rejects_with_reject_when_any(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    wait = await approvers_wait(client, required=2)
    done = await anon.post(wait["approvalUrls"]["cy"], data={"decision": "reject"})
    assert done.status_code == 200
    assert "Rejected" in done.text
    body = await payload(client, wait["id"])
    assert body["approved"] is False
    assert body["option"] == "reject"
    canceling = await approvers_wait(client, onReject="cancel")
    assert (await decide(client, canceling["id"], "bob", "reject")).status_code == 201
    assert (await get(client, canceling["id"]))["status"] == "canceled"


async def test_majority_rejects_once_more_than_half_rejected(client: httpx.AsyncClient) -> None:
    wait = await approvers_wait(client, required=2, rejectWhen="majority")
    eid = wait["id"]
    one = await decide(client, eid, "ada", "reject")
    assert one.status_code == 201
    assert one.json()["ended"] is None
    two = (await decide(client, eid, "bob", "reject")).json()
    assert two["ended"] == "rejected"
    assert two["status"] == "running"
    assert (await payload(client, eid))["approved"] is False
    # Four approvers, three needed: two rejections make approval impossible (not a majority).
    four = await approvers_wait(
        client, approvers=[*THREE, {"id": "dee"}], required=3, rejectWhen="majority"
    )
    assert (await decide(client, four["id"], "ada", "reject")).json()["ended"] is None
    assert (await decide(client, four["id"], "bob", "reject")).json()["ended"] == "rejected"


async def test_the_requester_cannot_decide(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    wait = await approvers_wait(client, requester="ada", required=2)
    mine = wait["approvalUrls"]["ada"]
    shown = await anon.get(mine)
    assert shown.status_code == 200
    assert "cannot decide" in shown.text
    assert "<form" not in shown.text
    refused = await anon.post(mine, data={"decision": "approve"})
    assert refused.status_code == 403
    api = await decide(client, wait["id"], "ada")
    assert api.status_code == 403
    assert "may not decide" in api.json()["message"]
    assert (await get(client, wait["id"]))["status"] == "waiting"


async def test_an_approver_decides_once(client: httpx.AsyncClient, anon: httpx.AsyncClient) -> None:
    wait = await approvers_wait(client, required=3)
    url = wait["approvalUrls"]["bob"]
    assert (await anon.post(url, data={"decision": "approve"})).status_code == 200
    assert (await anon.get(url)).status_code == 409
    assert (await anon.post(url, data={"decision": "reject"})).status_code == 409
    again = await decide(client, wait["id"], "bob", "reject")
    assert again.status_code == 409
    assert "already decided" in again.json()["message"]


async def test_one_approvers_link_cannot_act_as_anothers(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    wait = await approvers_wait(client)
    ada = wait["approvalUrls"]["ada"]
    for forged in (
        ada.replace("approver=ada", "approver=bob"),
        ada.replace("approver=ada", "approver=ada2"),
        ada.replace("approver=ada&", ""),
        ada.replace("approver=ada", "approver=" + quote("ada/x", safe="")),
        wait["approvalUrl"].replace("?", "?approver=ada&"),
    ):
        assert (await anon.get(forged)).status_code == 401, forged
        refused = await anon.post(forged, data={"decision": "approve"})
        assert refused.status_code == 401, forged
    view = await anon.get(wait["approvalUrl"])  # the link without an approver only shows
    assert view.status_code == 200
    assert "<form" not in view.text
    assert "Ada" in view.text
    assert (await anon.post(wait["approvalUrl"], data={"decision": "approve"})).status_code == 403
    assert (await get(client, wait["id"]))["status"] == "waiting"


@pytest.mark.parametrize("rounds", range(3))
async def test_concurrent_decisions_resume_exactly_once(
    client: httpx.AsyncClient, rounds: int
) -> None:
    wait = await approvers_wait(client, required=2)
    eid = wait["id"]
    answers = await asyncio.gather(*(decide(client, eid, who) for who in ("ada", "bob", "cy")))
    codes = sorted(a.status_code for a in answers)
    assert codes in ([201, 201, 409], [201, 201, 201]), codes
    ended = [a.json()["ended"] for a in answers if a.status_code == 201]
    assert ended.count("approved") == 1
    body = await payload(client, eid)
    assert body["approved"] is True
    assert len(body["decisions"]) == 2
    assert (await get(client, eid))["status"] == "running"


async def test_the_last_decision_races_the_deadline(
    client: httpx.AsyncClient, svc: Services, clock: ManualClock
) -> None:
    wait = await approvers_wait(client, waitTill=ONE_MINUTE, onTimeout="reject")
    eid = wait["id"]
    clock.advance(61_000)
    decided, _ = await asyncio.gather(decide(client, eid, "ada"), svc.scheduler.run_due())
    await fire_timers(svc, eid)
    body = await payload(client, eid)
    if decided.status_code == 201:
        assert body["approved"] is True
        assert body["timedOut"] is False
    else:
        assert decided.status_code == 409
        assert body["approved"] is False
        assert body["timedOut"] is True
    waits = (await get(client, eid, includeData="true"))["data"]["waits"]
    assert len(waits) == 1


@pytest.mark.parametrize(
    ("on_timeout", "approved"), [("approve", True), ("reject", False), ("resume", None)]
)
async def test_on_timeout_decides_at_the_deadline(
    client: httpx.AsyncClient,
    svc: Services,
    clock: ManualClock,
    on_timeout: str,
    approved: bool | None,
) -> None:
    wait = await approvers_wait(client, waitTill=ONE_MINUTE, onTimeout=on_timeout, required=2)
    assert (await decide(client, wait["id"], "cy", "approve", comment="yes")).status_code == 201
    clock.advance(61_000)
    await fire_timers(svc, wait["id"])
    body = await payload(client, wait["id"])
    assert body["approved"] is approved
    assert body["timedOut"] is True
    assert body["resumedBy"] == "timeout"
    assert body["option"] == {True: "approve", False: "reject", None: None}[approved]
    assert [d["approver"] for d in body["decisions"]] == ["cy"]
    assert (await get(client, wait["id"]))["status"] == "running"


async def test_on_timeout_cancel_cancels_and_tells_the_engine(
    settings: Settings, clock: ManualClock
) -> None:
    hook = "http://127.0.0.1:9/hook"
    allowed = dataclasses.replace(settings, callback_allowed_origins=(origin_of(hook),))
    async with running_gateway(allowed, clock) as (app, client):
        svc: Services = app.state.services
        execution = await create(client, callbackUrl=hook)
        spec = {"title": "Deploy?", "approvers": THREE, "onTimeout": "cancel"}
        await park(client, execution["id"], waitTill=ONE_MINUTE, approval=spec)
        clock.advance(61_000)
        await fire_timers(svc, execution["id"])
        assert (await get(client, execution["id"]))["status"] == "canceled"
        deliveries, _ = await svc.store.execution_deliveries(execution["id"])
        assert [d.event.value for d in deliveries] == ["execution.canceled"]
        late = await decide(client, execution["id"], "ada")
        assert late.status_code == 409


async def test_options_multiple_and_branch_reach_the_engine(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    wait = await approvers_wait(
        client,
        required=2,
        options=["staging", "prod", "reject"],
        multiple=True,
        branch={"staging": "deploy-staging", "prod": "deploy-prod", "reject": "stop"},
        comment="required",
    )
    page = await anon.get(wait["approvalUrls"]["ada"])
    assert 'type="checkbox"' in page.text
    assert 'value="prod"' in page.text
    assert "required" in page.text
    no_comment = await anon.post(wait["approvalUrls"]["ada"], data={"decision": "approve"})
    assert no_comment.status_code == 400
    assert "comment" in no_comment.text
    both = {"decision": "approve", "option": ["staging", "prod"], "comment": "go"}
    assert (await anon.post(wait["approvalUrls"]["ada"], data=both)).status_code == 200
    unknown = await decide(client, wait["id"], "bob", options=["qa"], comment="x")
    assert unknown.status_code == 400
    assert "'qa'" in unknown.json()["message"]
    done = await decide(client, wait["id"], "bob", options=["prod"], comment="only prod")
    assert done.json()["ended"] == "approved"
    body = await payload(client, wait["id"])
    assert body["options"] == ["prod"]
    assert body["branch"] == ["deploy-prod"]


async def test_a_single_choice_takes_the_option_most_approvers_picked(
    client: httpx.AsyncClient,
) -> None:
    wait = await approvers_wait(client, required=3, options=["small", "large"])
    for who, size in (("ada", "large"), ("bob", "small"), ("cy", "large")):
        assert (await decide(client, wait["id"], who, options=[size])).status_code == 201
    body = await payload(client, wait["id"])
    assert body["option"] == "large"
    assert "branch" not in body
    rejecting = await approvers_wait(client, options=["small", "large"])
    no_reject = await decide(client, rejecting["id"], "ada", "reject")
    assert no_reject.status_code == 400


async def test_the_decisions_api_checks_scope_project_and_body(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, svc: Services
) -> None:
    wait = await approvers_wait(client)
    eid = wait["id"]
    path = f"/api/v1/executions/{eid}/decisions"
    good = {"approver": "ada", "decision": "approve"}
    reader = await make_key(svc, "execution:read")
    assert (await anon.post(path, json=good, headers={"X-N8N-API-KEY": reader})).status_code == 403
    assert (await anon.post(path, json=good)).status_code == 401
    other = await make_key(svc, "execution:write", project="elsewhere")
    hidden = await anon.post(path, json=good, headers={"X-N8N-API-KEY": other})
    assert hidden.status_code == 404
    for body, fragment in (
        ({"approver": "zed", "decision": "approve"}, "'zed'"),
        ({"approver": "ada", "decision": "maybe"}, "approve or reject"),
        ({"approver": "ada b", "decision": "approve"}, "approver"),
        ({"approver": "ada", "decision": "approve", "via": "fax"}, "via"),
        ({"approver": "ada", "decision": "approve", "extra": 1}, "extra"),
        ({"approver": "ada", "decision": "approve", "comment": "x" * 1001}, "comment"),
        ({"decision": "approve"}, "approver"),
    ):
        refused = await client.post(path, json=body)
        assert refused.status_code == 400, body
        assert fragment in refused.json()["message"], (body, refused.json())
    assert (await client.post(path, content=b"{")).status_code == 400
    assert (await client.post("/api/v1/executions/999999/decisions", json=good)).status_code == 404
    assert (await get(client, eid))["status"] == "waiting"
    made = await decide(client, eid, "ada", via="slack")
    assert made.status_code == 201
    assert made.json()["decisions"][0]["via"] == "slack"
    assert (await decide(client, eid, "bob")).status_code == 409  # resumed: not waiting
    plain = await create(client)
    await park(client, plain["id"], approval={"title": "Anyone?"})
    assert (await decide(client, plain["id"], "ada")).status_code == 409


async def test_a_read_only_key_never_sees_approval_urls(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, svc: Services
) -> None:
    wait = await approvers_wait(client)
    reader = {"X-N8N-API-KEY": await make_key(svc, "execution:read", "execution:list")}
    data = {"includeData": "true"}
    one = (await anon.get(f"/api/v1/executions/{wait['id']}", headers=reader, params=data)).json()
    listed = (await anon.get("/api/v1/executions", headers=reader, params=data)).json()["data"]
    for view in (one, *listed):
        assert "approvalUrls" not in view
        assert "approvalUrl" not in view
    assert set((await get(client, wait["id"], **data))["approvalUrls"]) == {"ada", "bob", "cy"}


@pytest.mark.parametrize(
    ("approval", "fragment"),
    [
        ({"approvers": THREE, "required": 4}, "approval.required (4) is more than"),
        ({"approvers": THREE, "required": 3, "requester": "ada"}, "who may decide (2)"),
        ({"approvers": [{"id": "ada"}, {"id": "ada"}]}, "distinct ids; 'ada'"),
        ({"approvers": THREE, "onTimeout": "shrug"}, "approval.onTimeout"),
        ({"approvers": [{"id": "a b"}]}, "approvers[0].id"),
        ({"approvers": [{"id": ""}]}, "approvers[0].id"),
        ({"approvers": [{"id": "x" * 65}]}, "approvers[0].id"),
        ({"approvers": THREE, "rejectWhen": "all"}, "approval.rejectWhen"),
        ({"approvers": THREE, "options": ["a", "a"]}, "distinct"),
        ({"approvers": THREE, "options": ["reject"]}, "approves"),
        ({"approvers": THREE, "options": []}, "approval.options"),
        ({"approvers": THREE, "branch": {"nope": "x"}}, "'nope'"),
        ({"approvers": THREE, "comment": "maybe"}, "approval.comment"),
        ({"required": 2}, "approval.required needs approval.approvers"),
        ({"requester": "ada"}, "approval.requester needs approval.approvers"),
        ({"approvers": THREE, "requester": "a b"}, "approval.requester"),
        ({"approvers": [{"id": f"p{i}"} for i in range(51)]}, "approval.approvers"),
    ],
)
async def test_bad_approver_settings_are_400_naming_the_rule(
    client: httpx.AsyncClient, approval: dict[str, Any], fragment: str
) -> None:
    execution = await create(client)
    response = await client.post(
        f"/api/v1/executions/{execution['id']}/wait", json={"approval": {"title": "x", **approval}}
    )
    assert response.status_code == 400, response.text
    assert fragment in response.json()["message"]
    assert (await get(client, execution["id"]))["status"] == "running"


async def test_the_dashboard_shows_each_decision(
    app: Starlette, client: httpx.AsyncClient, admin_key: str
) -> None:
    wait = await approvers_wait(client, required=3)
    assert (await decide(client, wait["id"], "bob", comment="fine by me", via="email")).is_success
    ui = await signed_in(app, admin_key)
    page = (await ui.get(f"/ui/executions/{wait['id']}")).text
    await ui.aclose()
    assert "<h2>Decisions</h2>" in page
    assert "<td>bob</td><td>approve</td><td>approve</td><td>fine by me</td>" in page
    assert "<td>email</td>" in page
