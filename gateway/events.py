"""The callback events waitgate sends to the engine (Standard Webhooks payload shape)."""

from __future__ import annotations

from typing import Any

from gateway.domain import Event, Execution, Wait, format_instant


def _envelope(event: Event, now: int, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": event.value, "timestamp": format_instant(now), "data": data}


def _execution_fields(execution: Execution) -> dict[str, Any]:
    return {
        "executionId": execution.id,
        "workflowId": execution.workflow_id,
        "projectId": execution.project_id,
        "customData": execution.custom_data,
    }


def resumed(execution: Execution, wait: Wait, now: int) -> dict[str, Any]:
    """``execution.resumed``: which wait ended, how, with what payload, and how late a timer was."""
    late = None
    if wait.resumed_at is not None and wait.wait_till is not None:
        late = max(0, wait.resumed_at - wait.wait_till) if wait.resumed_by == "timeout" else None
    return _envelope(
        Event.RESUMED,
        now,
        {
            **_execution_fields(execution),
            "resumedBy": None if wait.resumed_by is None else wait.resumed_by.value,
            "wait": {
                "seq": wait.seq,
                "parkedAt": format_instant(wait.parked_at),
                "waitTill": format_instant(wait.reported_wait_till),
                "resumedAt": format_instant(wait.resumed_at),
            },
            "payload": wait.payload,
            "latenessMs": late,
        },
    )


def canceled(execution: Execution, now: int) -> dict[str, Any]:
    """``execution.canceled``: an operator or API client stopped the execution."""
    return _envelope(
        Event.CANCELED,
        now,
        {**_execution_fields(execution), "stoppedAt": format_instant(execution.stopped_at)},
    )


def retry(execution: Execution, now: int) -> dict[str, Any]:
    """``execution.retry``: a new execution that retries ``retryOf``; the engine should run it."""
    return _envelope(
        Event.RETRY,
        now,
        {
            **_execution_fields(execution),
            "retryOf": execution.retry_of,
            "mode": execution.mode,
            "data": execution.data,
        },
    )
