"""waitgate's deadline resumes the workflow with its default; a stopped execution cancels the
wait cleanly; a cancelled workflow stops its execution."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import CancelledError

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
DEFAULT = {"approved": False, "reason": "nobody answered in time"}


@pytest.mark.parametrize("via", VIAS)
async def test_deadline_resumes_with_the_default(stack: Stack, via: str) -> None:
    handle = await stack.start(Ask(via=via, timeout_seconds=3600, default=DEFAULT))
    links = await paused(stack, handle, via)
    execution = await stack.execution(links["executionId"])
    deadline = datetime.fromisoformat(execution["waitTill"])
    left = deadline - datetime.fromtimestamp(stack.gateway.clock.now_ms() / 1000).astimezone()
    assert timedelta(minutes=59) < left < timedelta(minutes=61)  # the workflow's timeout

    stack.gateway.advance(59 * 60 * 1000)  # not yet
    assert (await stack.execution(links["executionId"]))["status"] == "waiting"
    stack.gateway.advance(2 * 60 * 1000)  # waitgate's timer fires; nobody sleeps through it

    result = await handle.result()
    assert result == {
        "executionId": links["executionId"],
        "resumedBy": "timeout",
        "payload": DEFAULT,
        "timedOut": True,
    }
    assert len(stack.adapter.resumed_calls) == 1
    assert stack.adapter.resumed_calls[0].timed_out
    finished = await stack.execution(links["executionId"])
    assert finished["status"] == "success"
    assert finished["data"]["waits"][0]["resumedBy"] == "timeout"


@pytest.mark.parametrize("via", VIAS)
async def test_no_callback_at_all_still_takes_the_default(stack: Stack, via: str) -> None:
    """The relay never calls (here: waitgate's clock never reaches the deadline): past
    ``timeout + grace`` in Temporal's own time the run takes its default, and stops the
    execution so that its link acts no more. (Seconds of real time: Temporal's timer.)"""
    handle = await stack.start(Ask(via=via, timeout_seconds=2, grace_seconds=1, default=DEFAULT))
    links = await paused(stack, handle, via)

    result = await handle.result()
    assert result == {
        "executionId": links["executionId"],
        "resumedBy": "timeout",
        "payload": DEFAULT,
        "timedOut": True,
    }
    assert (await stack.execution(links["executionId"]))["status"] == "canceled"
    assert stack.adapter.resumed_calls == []
    async with httpx.AsyncClient() as http:
        late = await http.post(links["resumeUrl"], json={"approved": True})
    assert late.status_code in (404, 409, 410), late.text


@pytest.mark.parametrize("via", VIAS)
async def test_stopped_execution_cancels_the_wait(stack: Stack, via: str) -> None:
    handle = await stack.start(Ask(via=via))
    links = await paused(stack, handle, via)

    stopped = await stack.api.post(f"/executions/{links['executionId']}/stop")
    assert stopped.status_code == 200, stopped.text

    result = await handle.result()
    assert result == {
        "canceled": True,
        "message": f"waitgate execution {links['executionId']} was canceled",
    }
    assert len(stack.adapter.canceled_calls) == 1
    assert stack.adapter.resumed_calls == []
    if via == "activity":
        assert await activity_outcomes(handle, "waitgate_park") == ["failed"]  # not retried
    else:
        signaled = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        assert await history_count(handle, signaled, "waitgate_canceled") == 1
    assert (await stack.execution(links["executionId"]))["status"] == "canceled"


@pytest.mark.parametrize("via", VIAS)
async def test_cancelled_workflow_stops_its_execution(stack: Stack, via: str) -> None:
    handle = await stack.start(Ask(via=via))
    links = await paused(stack, handle, via)

    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, CancelledError)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED

    async def canceled() -> bool:
        status: str = (await stack.execution(links["executionId"]))["status"]
        return status == "canceled"

    await eventually(canceled, what="the execution to be stopped")
    # waitgate still tells the relay; the run is past its wait, so that is done, not an error.
    await eventually(lambda: _answered(stack), what="the canceled callback")
    assert [p.status for p in stack.relay.posted] == [200]


async def _answered(stack: Stack) -> bool:
    return bool(stack.relay.posted) and all(p.status for p in stack.relay.posted)
