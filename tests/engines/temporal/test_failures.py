"""Temporal out of reach when the callback arrives: the relay answers 503, waitgate retries the
same delivery, and the run resumes once Temporal is back."""

from __future__ import annotations

import uuid

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.service import RetryConfig
from temporalio.worker import Worker

from gateway.integrations.temporal import TemporalAdapter, WaitgateActivities
from tests.engines.temporal.conftest import (
    ON_SESSION_LOOP,
    Stack,
    activity_outcomes,
    eventually,
    paused,
)
from tests.engines.temporal.workflows import Ask, Gate
from tests.receiver import free_port

pytestmark = ON_SESSION_LOOP


async def test_unreachable_temporal_is_retried_by_waitgate(stack: Stack) -> None:
    handle = await stack.start(Ask(via="activity"))
    links = await paused(stack, handle, "activity")
    reachable = stack.adapter.inner
    nowhere = await Client.connect(
        f"127.0.0.1:{free_port()}", lazy=True, retry_config=RetryConfig(max_retries=0)
    )
    stack.adapter.inner = TemporalAdapter(nowhere)

    async with httpx.AsyncClient() as http:
        resumed = await http.post(links["resumeUrl"], json={"approved": True})
    assert resumed.status_code == 200

    async def answered(count: int) -> bool:
        return len([p for p in stack.relay.posted if p.status]) >= count

    await eventually(lambda: answered(1), what="the first delivery")
    assert stack.relay.posted[0].status == 503  # waitgate will retry
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

    stack.adapter.inner = reachable  # Temporal is back
    stack.gateway.advance(10 * 60 * 1000)  # past waitgate's retry backoff
    await eventually(lambda: answered(2), what="waitgate's retry")
    retried = stack.relay.posted[1]
    assert retried.status == 200
    assert retried.headers["webhook-id"] == stack.relay.posted[0].headers["webhook-id"]

    result = await handle.result()
    assert result["payload"]["body"] == {"approved": True}
    assert await activity_outcomes(handle, "waitgate_park") == ["completed"]
    delivery = (await stack.deliveries(links["executionId"]))[0]
    assert delivery["status"] == "delivered"
    assert [a["statusCode"] for a in delivery["attempts"]] == [503, 200]


@pytest.mark.parametrize("via", ["activity", "signal"])
async def test_a_wait_waitgate_refuses_fails_the_run_once(stack: Stack, via: str) -> None:
    handle = await stack.start(Ask(via=via, kind="refused"))
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    activity_error = failure.value.cause
    assert isinstance(activity_error, ActivityError)
    refused = activity_error.cause
    assert isinstance(refused, ApplicationError)
    assert refused.type == "WaitgateHttp400"
    assert "BREW" in refused.message
    assert refused.non_retryable
    park = "waitgate_park" if via == "activity" else "waitgate_park_for_signal"
    assert await activity_outcomes(handle, park) == ["failed"]  # one attempt, not retried
    # Created and parked in one call: the refused wait left no execution behind.
    assert (await stack.api.get("/executions")).json()["data"] == []


@pytest.mark.parametrize("via", ["activity", "signal"])
async def test_the_wait_outlives_a_worker_restart(stack: Stack, via: str) -> None:
    """No worker runs while the wait ends: Temporal keeps the outcome (the completed activity,
    the signal), and the next worker continues the run with it."""
    queue = f"restart-{uuid.uuid4()}"
    activities = WaitgateActivities(stack.gateway.url, stack.gateway.admin_key, stack.relay_url)
    try:
        async with Worker(
            stack.client, task_queue=queue, workflows=[Gate], activities=activities.all()
        ):
            handle = await stack.client.start_workflow(
                Gate.run, Ask(via=via), id=f"restart-{uuid.uuid4()}", task_queue=queue
            )
            links = await paused(stack, handle, via)
        # The worker is gone. The partner calls; the relay hands it to Temporal all the same.
        async with httpx.AsyncClient() as http:
            assert (await http.post(links["resumeUrl"], json={"late": True})).status_code == 200

        async def relayed() -> bool:
            return any(p.status == 200 for p in stack.relay.posted)

        await eventually(relayed, what="the relay to take the callback")
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        async with Worker(
            stack.client, task_queue=queue, workflows=[Gate], activities=activities.all()
        ):
            result = await handle.result()
    finally:
        await activities.aclose()
    assert result["payload"]["body"] == {"late": True}
    assert (await stack.execution(links["executionId"]))["status"] == "success"
