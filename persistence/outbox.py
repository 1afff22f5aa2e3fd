"""The callback outbox: the event rows transitions write, and the dispatcher's verbs.

An event's payload (Standard Webhooks shape) is made when its transition commits, in the same
transaction, so the engine hears exactly what happened.
"""

from __future__ import annotations

import secrets
from typing import Any

from gateway.domain import Execution, Wait, format_instant
from gateway.endpoints import Breaker, Transition, endpoint_of
from gateway.outbox_model import (
    CRASHES_ON_DEATH,
    OPERATIONAL,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Event,
)
from persistence import endpoints, rows, traces
from persistence import script as q
from persistence.script import Row, Script


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
    return _resumed(_execution_fields(execution), wait, now)


def _resumed(fields: dict[str, Any], wait: Wait, now: int) -> dict[str, Any]:
    late = None
    if wait.resumed_at is not None and wait.wait_till is not None:
        late = max(0, wait.resumed_at - wait.wait_till) if wait.resumed_by == "timeout" else None
    return _envelope(
        Event.RESUMED,
        now,
        {
            **fields,
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
    params = {
        "id": "msg_" + secrets.token_hex(12),
        "execution_id": execution.id,
        "event": event.value,
        "target_url": execution.callback_url,
        "payload": rows.dump(payload),
        "now": now,
        "endpoint": endpoint_of(execution.callback_url, None),
        **traces.for_delivery(execution_row, wait_row),
    }
    yield from q.count("insert_delivery", params)
    yield q.OUTBOX


def resumed_delivery(seen: Row, wait: Wait, now: int) -> dict[str, Any]:
    """``insert_delivery``'s parameters for the ``execution.resumed`` of ``wait`` (as its
    resume, at ``now``, writes it), without reading anything: ``seen`` is the wait's row with
    its execution's fields, as ``get_signed_wait`` reads them (which ``emit`` would read again).
    The execution must have a callback URL; its customData must still be ``seen``'s when the
    resume writes (SQLite: the single writer; PostgreSQL: ``resume_call`` requires it)."""
    url = seen["callback_url"]
    assert url is not None
    fields = {
        "executionId": seen["execution_id"],
        "workflowId": seen["workflow_id"],
        "projectId": seen["project_id"],
        "customData": rows.load(seen["custom_data"]) or {},
    }
    execution_trace = {
        "trace_parent": seen["execution_trace_parent"],
        "trace_state": seen["execution_trace_state"],
    }
    return {
        "id": "msg_" + secrets.token_hex(12),
        "execution_id": seen["execution_id"],
        "event": Event.RESUMED.value,
        "target_url": url,
        "payload": rows.dump(_resumed(fields, wait, now)),
        "now": now,
        "endpoint": endpoint_of(url, None),
        **traces.for_delivery(execution_trace, seen),
    }


def emit_operational(
    url: str, event: Event, execution_id: int, data: dict[str, Any], now: int
) -> Script[None]:
    """Write an operational event for the operator's ``url`` (``WAITGATE_OPERATIONS_URL``) to the
    outbox; it rides on the execution whose delivery caused it (and goes when it is deleted)."""
    params = {
        "id": "msg_" + secrets.token_hex(12),
        "execution_id": execution_id,
        "event": event.value,
        "target_url": url,
        "payload": rows.dump(_envelope(event, now, data)),
        "now": now,
        "endpoint": endpoint_of(url, None),
        **traces.NO_TRACE,
    }
    yield from q.count("insert_delivery", params)
    yield q.OUTBOX


def claim_deliveries(
    now: int, limit: int, lease_ms: int, per_endpoint: int = 1_000_000
) -> Script[list[Delivery]]:
    """Lease up to ``limit`` deliveries for ``lease_ms``, honouring each endpoint's breaker
    and concurrency (``persistence.endpoints.claim``); on PostgreSQL, replicas skip the rows
    another has locked."""
    yield from endpoints.fill_legacy_endpoints()
    return (yield from endpoints.claim(now, limit, lease_ms, per_endpoint))


def next_delivery_due() -> Script[int | None]:
    """When the earliest pending delivery is due."""
    found = yield from q.row("next_delivery_due")
    return None if found is None or found["due"] is None else int(found["due"])


def record_attempt(
    attempt: DeliveryAttempt,
    *,
    next_attempt_at: int | None,
    now: int,
    endpoint: str = "",
    breaker: Breaker | None = None,
    operations_url: str | None = None,
) -> Script[Transition | None]:
    """Record an attempt: a 2xx delivers; an abort answer ends it as ``aborted``; otherwise
    retry at ``next_attempt_at``, or, if that is ``None``, the delivery is dead. A dead or
    aborted delivery crashes a running execution it announced, with the reason as its error
    (the engine never heard of it). With ``breaker``, the outcome counts against
    ``endpoint``'s breaker (first: claims lock the endpoint before deliveries too); with
    ``operations_url``, the operator is told of deaths and of the breaker's transitions, except
    those operational events themselves cause. The breaker's transition, if any."""
    transition = None
    if breaker is not None and endpoint:
        answered = attempt.succeeded or attempt.aborted
        transition = yield from endpoints.settle(endpoint, answered, now, breaker)
    params = rows.attempt_outcome_params(attempt, next_attempt_at, now)
    yield from q.count("insert_attempt", rows.attempt_params(attempt))
    ended: DeliveryStatus | None = None
    if attempt.succeeded:
        yield from q.count("delivery_succeeded", params)
    elif next_attempt_at is not None and not attempt.aborted:
        yield from q.count("delivery_failed", params)
    else:
        ended = DeliveryStatus.ABORTED if attempt.aborted else DeliveryStatus.DEAD
        dead = yield from q.row("delivery_dead", {**params, "status": ended.value})
        if dead is not None and Event(dead["event"]) in CRASHES_ON_DEATH:
            crash = rows.crash_params(dead["execution_id"], attempt, params["error"], now)
            yield from q.count("crash_undelivered", crash)
    if operations_url is not None:
        yield from _tell_operator(
            operations_url, attempt, params["error"], ended, transition, endpoint, now
        )
    return transition


def _tell_operator(
    url: str,
    attempt: DeliveryAttempt,
    error: str,
    ended: DeliveryStatus | None,
    transition: Transition | None,
    endpoint: str,
    now: int,
) -> Script[None]:
    """The operational events an attempt causes (none for an operational event's own)."""
    if ended is None and transition is None:
        return
    found = yield from q.one("get_delivery", {"id": attempt.delivery_id})
    delivery = rows.delivery_from_row(found)
    if delivery.event in OPERATIONAL:
        return
    if ended is not None:
        data = {
            "deliveryId": delivery.id,
            "executionId": delivery.execution_id,
            "event": delivery.event.value,
            "endpoint": delivery.endpoint,
            "status": ended.value,
            "attempts": delivery.attempts,
            "lastError": error,
        }
        yield from emit_operational(url, Event.DELIVERY_EXHAUSTED, delivery.execution_id, data, now)
    if transition is not None:
        state = yield from endpoints.get_endpoint(endpoint)
        assert state is not None
        data = {
            "endpoint": endpoint,
            "state": state.state.value,
            "consecutiveFailures": state.consecutive_failures,
            "openUntil": format_instant(state.open_until),
            "deliveryId": delivery.id,
            "lastError": None if attempt.succeeded or attempt.aborted else error,
        }
        yield from emit_operational(url, Event(transition.value), delivery.execution_id, data, now)


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
    """Make a dead, aborted or delivered delivery pending again, with a fresh maximum age (an
    open endpoint's cool-down ends: the next probe goes now); ``None`` if it is pending or
    unknown."""
    found = yield from q.row("redeliver", {"id": delivery_id, "now": now})
    if found is None:
        return None
    yield from endpoints.hasten_probe(found["endpoint"], now)
    yield q.OUTBOX
    return rows.delivery_from_row(found)


def defer_delivery(delivery_id: str, until: int) -> Script[None]:
    """Give back a claimed delivery unsent, due again at ``until`` (an endpoint's rate limit);
    no attempt is counted."""
    yield from q.count("defer_delivery", {"id": delivery_id, "until": until})
