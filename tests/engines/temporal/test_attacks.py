"""Callbacks the relay must refuse: nothing reaches Temporal, the run keeps waiting."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from gateway.delivery import sign
from tests.engines.temporal.conftest import ON_SESSION_LOOP, Stack, eventually, paused
from tests.engines.temporal.workflows import Ask

pytestmark = ON_SESSION_LOOP
FORGER_SECRET = "whsec_" + base64.b64encode(b"not-the-gateway-secret-32-bytes!").decode()


def forged_event(execution: dict[str, Any]) -> bytes:
    """A resume of the waiting execution, as waitgate would send it, naming the real run."""
    return json.dumps(
        {
            "type": "execution.resumed",
            "timestamp": "2026-01-01T00:00:00.000Z",
            "data": {
                "executionId": execution["id"],
                "workflowId": execution["workflowId"],
                "projectId": None,
                "customData": execution["customData"],
                "resumedBy": "webhook",
                "wait": {"seq": 1},
                "payload": {"body": {"approved": True}},
            },
        }
    ).encode()


def headers(body: bytes, secret: str, stamp: int, message_id: str = "msg_forged") -> dict[str, str]:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(key, message_id, stamp, body),
        "content-type": "application/json",
    }


@pytest.mark.parametrize("via", ["activity", "signal"])
async def test_forged_callbacks_are_refused(stack: Stack, via: str) -> None:
    handle = await stack.start(Ask(via=via))
    links = await paused(stack, handle, via)
    execution = await stack.execution(links["executionId"])
    body = forged_event(execution)
    now = int(stack.gateway.clock.now_ms() / 1000)
    real = stack.gateway.callback_secret
    signed = headers(body, real, now)
    attempts = {
        "unsigned": ({"content-type": "application/json"}, body),
        "another secret": (headers(body, FORGER_SECRET, now), body),
        "stale (replayed an hour late)": (headers(body, real, now - 3600), body),
        "tampered body": (signed, body.replace(b'"approved": true', b'"approved": false')),
        "signature of another id": ({**signed, "webhook-id": "msg_other"}, body),
    }
    async with httpx.AsyncClient() as http:
        for name, (sent_headers, content) in attempts.items():
            answer = await http.post(stack.relay_url, content=content, headers=sent_headers)
            assert answer.status_code == 401, (name, answer.text)

    assert stack.adapter.resumed_calls == []
    described = await handle.describe()
    assert described.status == WorkflowExecutionStatus.RUNNING
    if via == "activity":
        assert [a.activity_type.name for a in described.raw_description.pending_activities] == [
            "waitgate_park"
        ]
    assert (await stack.execution(links["executionId"]))["status"] == "waiting"

    # The real resume still works afterwards, once.
    async with httpx.AsyncClient() as http:
        resumed = await http.post(links["resumeUrl"], json={"approved": "for real"})
    assert resumed.status_code == 200
    result = await handle.result()
    assert result["payload"]["body"] == {"approved": "for real"}
    assert len(stack.adapter.resumed_calls) == 1


@pytest.mark.parametrize("via", ["activity", "signal"])
async def test_a_callback_of_another_execution_does_not_pass_for_the_wait(
    stack: Stack, via: str
) -> None:
    """An API key holder points a second execution at the waiting run (its customData copied):
    its resume reaches Temporal (it is genuinely signed), but the run does not take it as the
    outcome of its own wait."""
    handle = await stack.start(Ask(via=via))
    links = await paused(stack, handle, via)
    own = await stack.execution(links["executionId"])
    created = await stack.api.post(
        "/executions",
        json={
            "workflowId": "intruder",
            "customData": own["customData"],
            "callbackUrl": stack.relay_url,
        },
    )
    assert created.status_code == 201, created.text
    intruder = created.json()["id"]
    parked = await stack.api.post(f"/executions/{intruder}/wait", json={"webhook": {}})
    assert parked.status_code == 200, parked.text
    async with httpx.AsyncClient() as http:
        assert (await http.get(parked.json()["resumeUrl"])).status_code == 200

    async def relayed() -> bool:
        return len(stack.adapter.resumed_calls) == 1 and all(p.status for p in stack.relay.posted)

    await eventually(relayed, what="the intruder's callback")
    if via == "activity":
        # The activity is completed (Temporal cannot tell), and the run refuses the outcome.
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        assert isinstance(failure.value.cause, ApplicationError)
        assert failure.value.cause.type == "WaitgateMismatch"
        return
    # The signal names another execution: the run keeps waiting for its own.
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    async with httpx.AsyncClient() as http:
        assert (await http.post(links["resumeUrl"], json={"own": True})).status_code == 200
    result = await handle.result()
    assert result["executionId"] == links["executionId"]
    assert result["payload"]["body"] == {"own": True}
