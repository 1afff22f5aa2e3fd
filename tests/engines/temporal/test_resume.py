"""A workflow parked at a wait resumes exactly once, by a real call of its resume URL, an
approval or a form, and continues with the payload; duplicates of the callback change nothing."""

from __future__ import annotations

import json

import httpx
import pytest
from temporalio.api.enums.v1 import EventType

from gateway.integrations.relay import Callback
from tests.engines.temporal.conftest import (
    ON_SESSION_LOOP,
    Stack,
    activity_outcomes,
    eventually,
    history_count,
    paused,
)
from tests.engines.temporal.workflows import Ask

pytestmark = ON_SESSION_LOOP
VIAS = ["activity", "signal"]


async def answered(stack: Stack, count: int) -> bool:
    """Whether the relay has answered ``count`` callbacks."""
    return len([p for p in stack.relay.posted if p.status]) >= count


@pytest.mark.parametrize("via", VIAS)
async def test_resume_url_continues_the_workflow_once(stack: Stack, via: str) -> None:
    handle = await stack.start(Ask(via=via, linger=True))
    links = await paused(stack, handle, via)

    async with httpx.AsyncClient() as http:
        first = await http.post(links["resumeUrl"], json={"approved": True, "by": "partner"})
        again = await http.post(links["resumeUrl"], json={"approved": False})
    assert first.status_code == 200, first.text
    assert again.status_code == 409  # the URL resumes exactly once

    await eventually(lambda: answered(stack, 1), what="the relay to take the callback")
    assert stack.relay.posted[0].status == 200
    assert len(stack.adapter.resumed_calls) == 1

    # The same webhook-id again, straight to the relay: a duplicate, not relayed.
    repeated = await stack.repost(stack.relay.posted[0])
    assert repeated.status_code == 200
    assert repeated.json()["status"] == "duplicate"
    # ... and redelivered by waitgate itself: the same webhook-id, the same answer.
    delivery = (await stack.deliveries(links["executionId"]))[0]
    redelivered = await stack.api.post(f"/deliveries/{delivery['id']}/redeliver")
    assert redelivered.status_code == 202, redelivered.text
    await eventually(lambda: answered(stack, 3), what="the redelivery")
    resent = stack.relay.posted[2]
    assert resent.headers["webhook-id"] == stack.relay.posted[0].headers["webhook-id"]
    assert json.loads(resent.answer)["status"] == "duplicate"
    assert len(stack.adapter.resumed_calls) == 1

    # A relay that forgot the id (its state lost) hands it to Temporal again, with another
    # payload even: Temporal's side is idempotent, the workflow keeps the first outcome.
    stale = json.loads(stack.relay.posted[0].body)
    stale["data"]["payload"] = {"body": {"approved": False}}
    await stack.adapter.inner.resumed(Callback.parse("msg_stale", stale))

    await handle.signal("finish")
    result = await handle.result()
    assert result == {
        "executionId": links["executionId"],
        "resumedBy": "webhook",
        "timedOut": False,
        "payload": result["payload"],
    }
    assert result["payload"]["body"] == {"approved": True, "by": "partner"}
    if via == "activity":
        assert await activity_outcomes(handle, "waitgate_park") == ["completed"]
    else:
        signaled = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        assert await history_count(handle, signaled, "waitgate_resumed") == 2  # relay + stale
    execution = await stack.execution(links["executionId"])
    assert execution["status"] == "success"  # the helper finished it once the run took it
    assert len(execution["data"]["waits"]) == 1


@pytest.mark.parametrize("via", VIAS)
async def test_approval_page_decides(stack: Stack, via: str) -> None:
    handle = await stack.start(Ask(via=via, kind="approval"))
    links = await paused(stack, handle, via)
    assert links["approvalUrl"]

    async with httpx.AsyncClient() as http:
        page = await http.get(links["approvalUrl"])
        assert page.status_code == 200
        assert "Ship order A-1001?" in page.text
        decided = await http.post(
            links["approvalUrl"],
            content="decision=approve&comment=looks+good",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert decided.status_code == 200, decided.text

    result = await handle.result()
    assert result["resumedBy"] == "form"  # an approval without named approvers: its page
    assert result["payload"]["approved"] is True
    assert result["payload"]["comment"] == "looks good"
    assert len(stack.adapter.resumed_calls) == 1


@pytest.mark.parametrize("via", VIAS)
async def test_partner_event_resumes_the_matching_wait(stack: Stack, via: str) -> None:
    source = {"name": "orders", "verify": {"type": "none", "allowedIps": ["127.0.0.0/8"]}}
    assert (await stack.api.post("/event-sources", json=source)).status_code == 201
    handle = await stack.start(Ask(via=via, kind="event"))
    await paused(stack, handle, via)

    async with httpx.AsyncClient() as http:
        other = {"id": "evt_0", "orderId": "B-2002", "status": "paid"}
        sent = await http.post(f"{stack.gateway.url}/events/orders", json=other)
        assert sent.json()["matched"] == 0  # another order's event leaves this run waiting
        mine = {"id": "evt_1", "orderId": "A-1001", "status": "paid"}
        sent = await http.post(f"{stack.gateway.url}/events/orders", json=mine)
        assert sent.json()["matched"] == 1, sent.text

    result = await handle.result()
    assert result["resumedBy"] == "event"
    assert "B-2002" not in json.dumps(result["payload"])
    assert "A-1001" in json.dumps(result["payload"])
    assert len(stack.adapter.resumed_calls) == 1


async def test_form_submission_continues_with_values(stack: Stack) -> None:
    handle = await stack.start(Ask(via="signal", kind="form"))
    links = await paused(stack, handle, "signal")
    assert links["resumeFormUrl"]

    async with httpx.AsyncClient() as http:
        sent = await http.post(links["resumeFormUrl"], data={"street": "1 Main St"})
    assert sent.status_code == 200, sent.text

    result = await handle.result()
    assert result["resumedBy"] == "form"
    assert "1 Main St" in json.dumps(result["payload"])


@pytest.mark.parametrize("via", VIAS)
async def test_workflow_reads_the_link_while_it_waits(stack: Stack, via: str) -> None:
    handle = await stack.start(Ask(via=via, announce=True))
    links = await paused(stack, handle, via)
    async with httpx.AsyncClient() as http:
        assert (await http.post(links["resumeUrl"], json={"n": 1})).status_code == 200
    result = await handle.result()
    assert result["announced"] == links["resumeUrl"]
    assert result["payload"]["body"] == {"n": 1}
