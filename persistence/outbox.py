"""The callback outbox: the event rows transitions write, and the dispatcher's verbs.

An event's payload (Standard Webhooks shape) is made when its transition commits, in the same
transaction, so the engine hears exactly what happened.
"""

from __future__ import annotations

import secrets
from typing import Any

from gateway.domain import Execution, Wait, format_instant
from gateway.outbox_model import CRASHES_ON_DEATH, Delivery, DeliveryAttempt, Event
from persistence import rows, traces
from persistence import script as q
from persistence.script import Script


def _envelope(event: Event, now: int, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": event.value, "timestamp": format_instant(now), "data": data}


def _execution_fields(execution: Execution) -> dict[str, Any]:
    return {
        "executionId": execution.id,
        "workflowId": execution.workflow_id,
        "projectId": execution.project_id,
        "customData": execution.custom_data,
    }


def resumed_payload(execution: Execution, wait: Wait, now: int) -> dict[str, Any]:
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


def canceled_payload(execution: Execution, now: int) -> dict[str, Any]:
    """``execution.canceled``: an operator or API client stopped the execution."""
    return _envelope(
        Event.CANCELED,
        now,
        {**_execution_fields(execution), "stoppedAt": format_instant(execution.stopped_at)},
    )


def retry_payload(execution: Execution, now: int) -> dict[str, Any]:
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


def emit(execution_id: int, event: Event, now: int, seq: int = 0) -> Script[None]:
    """Write the outbox row for ``event`` (the caller knows the execution has a callback URL)."""
    execution_row = yield from q.one("get_execution", {"id": execution_id})
    execution = rows.execution_from_row(execution_row)
    assert execution.callback_url is not None
    wait_row = None
    if event is Event.RESUMED:
        wait_row = yield from q.one("get_wait", {"id": execution_id, "seq": seq})
        payload = resumed_payload(execution, rows.wait_from_row(wait_row), now)
    elif event is Event.CANCELED:
        payload = canceled_payload(execution, now)
    else:
        payload = retry_payload(execution, now)
    delivery_id = "msg_" + secrets.token_hex(12)
    params = {
        "id": delivery_id,
        "execution_id": execution.id,
        "event": event.value,
        "target_url": execution.callback_url,
        "payload": rows.dump(payload),
        "now": now,
    }
    yield from q.count("insert_delivery", params)
    yield from traces.keep_for_delivery(delivery_id, execution_row, wait_row)
    yield q.OUTBOX


def claim_deliveries(now: int, limit: int, lease_ms: int) -> Script[list[Delivery]]:
    """Lease up to ``limit`` due pending deliveries for ``lease_ms`` (on PostgreSQL, replicas
    skip the rows another has locked)."""
    params = {"now": now, "limit": limit, "lease_until": now + lease_ms}
    return [rows.delivery_from_row(r) for r in (yield from q.rows("claim_deliveries", params))]


def next_delivery_due() -> Script[int | None]:
    """When the earliest pending delivery is due."""
    found = yield from q.row("next_delivery_due")
    return None if found is None or found["due"] is None else int(found["due"])


def record_attempt(
    attempt: DeliveryAttempt, *, next_attempt_at: int | None, now: int
) -> Script[None]:
    """Record an attempt: a 2xx delivers; otherwise retry at ``next_attempt_at``, or, if
    that is ``None``, the delivery is dead (and a running execution it announced crashes,
    with the reason as its error: the engine never heard of it)."""
    params = rows.attempt_outcome_params(attempt, next_attempt_at, now)
    yield from q.count("insert_attempt", rows.attempt_params(attempt))
    if attempt.succeeded:
        yield from q.count("delivery_succeeded", params)
    elif next_attempt_at is not None:
        yield from q.count("delivery_failed", params)
    else:
        dead = yield from q.row("delivery_dead", params)
        if dead is not None and Event(dead["event"]) in CRASHES_ON_DEATH:
            crash = rows.crash_params(dead["execution_id"], attempt, params["error"], now)
            yield from q.count("crash_undelivered", crash)


def get_delivery(delivery_id: str) -> Script[Delivery | None]:
    """One delivery."""
    found = yield from q.row("get_delivery", {"id": delivery_id})
    return None if found is None else rows.delivery_from_row(found)


def execution_deliveries(execution_id: int) -> Script[tuple[list[Delivery], list[DeliveryAttempt]]]:
    """An execution's deliveries and every attempt made for them."""
    key = {"id": execution_id}
    deliveries = [
        rows.delivery_from_row(r) for r in (yield from q.rows("execution_deliveries", key))
    ]
    attempts = [rows.attempt_from_row(r) for r in (yield from q.rows("execution_attempts", key))]
    return deliveries, attempts


def redeliver(delivery_id: str, now: int) -> Script[Delivery | None]:
    """Make a dead or delivered delivery pending again, with a fresh maximum age; ``None`` if it
    is pending or unknown."""
    found = yield from q.row("redeliver", {"id": delivery_id, "now": now})
    if found is None:
        return None
    yield q.OUTBOX
    return rows.delivery_from_row(found)
