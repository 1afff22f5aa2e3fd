"""Callback deliveries: list an execution's attempts, and send a delivery again."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.auth import Principal, Scope
from gateway.domain import Wait, format_instant
from gateway.http import ApiError, JSONResponse
from gateway.outbox_model import OPERATIONAL, Delivery, DeliveryAttempt, DeliveryStatus
from gateway.redaction import shown_event
from gateway.routes.common import AN_EXECUTION, execution_target, load_execution
from gateway.routes.public import redaction
from gateway.routing import scoped
from gateway.services import services


def delivery_view(
    delivery: Delivery,
    attempts: list[DeliveryAttempt],
    waits: Sequence[Wait],
    redact: bool | None = None,
) -> dict[str, Any]:
    """A delivery with its attempts; its payload masked like ``includeData`` (``waits``: the
    execution's, whose own secret headers are masked too)."""
    return {
        "id": delivery.id,
        "executionId": delivery.execution_id,
        "event": delivery.event.value,
        "channel": delivery.channel,
        "targetUrl": delivery.target_url,
        "status": delivery.status.value,
        "attempts": [
            {
                "attemptedAt": format_instant(a.attempted_at),
                "statusCode": a.status_code,
                "error": a.error,
                "latencyMs": a.latency_ms,
            }
            for a in attempts
            if a.delivery_id == delivery.id
        ],
        "createdAt": format_instant(delivery.created_at),
        "nextAttemptAt": format_instant(delivery.next_attempt_at)
        if delivery.status is DeliveryStatus.PENDING
        else None,
        "deliveredAt": format_instant(delivery.delivered_at),
        "lastError": delivery.last_error,
        "payload": shown_event(delivery.payload, waits, redact=redact),
    }


async def execution_deliveries(request: Request, principal: Principal) -> Response:
    """``GET /api/v1/executions/{id}/deliveries``."""
    svc, eid = execution_target(request)
    redact, _ = redaction(request, principal)
    execution = await load_execution(svc, principal, eid, with_waits=True)
    found, attempts = await svc.store.execution_deliveries(eid)
    views = [delivery_view(d, attempts, execution.waits, redact) for d in found]
    return JSONResponse({"data": views})


async def redeliver(request: Request, principal: Principal) -> Response:
    """``POST /api/v1/deliveries/{id}/redeliver``: a dead or delivered callback, sent again."""
    svc = services(request)
    delivery_id: str = request.path_params["id"]
    delivery = await svc.store.get_delivery(delivery_id)
    if delivery is None or (delivery.event in OPERATIONAL and principal.project_id is not None):
        # an operational event is the operator's, whatever execution it rides on
        raise ApiError(404, f'The delivery "{delivery_id}" does not exist.')
    execution = await load_execution(svc, principal, delivery.execution_id, with_waits=True)
    again = await svc.store.redeliver(delivery_id, svc.clock.now_ms())
    if again is None:
        raise ApiError(409, f'The delivery "{delivery_id}" is pending already.')
    return JSONResponse(delivery_view(again, [], execution.waits), status_code=202)


routes = [
    scoped(f"{AN_EXECUTION}/deliveries", execution_deliveries, ["GET"], scope=Scope.EXECUTION_READ),
    scoped("/api/v1/deliveries/{id}/redeliver", redeliver, ["POST"], scope=Scope.EXECUTION_RETRY),
]
