"""Delivery operations over the API: the endpoints' state (``GET /api/v1/endpoints``) and bulk
recovery of dead or aborted deliveries (``POST /api/v1/deliveries/recover``).

A project-bound key sees only the endpoints its project's deliveries go to, counting only
those, and recovers only its project's deliveries; operational events (the operator's) are
neither counted nor recovered for it.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from gateway.auth import Principal, Scope
from gateway.domain import format_instant, parse_instant
from gateway.endpoints import CHANNEL_PREFIX, Endpoint
from gateway.http import ApiError, JSONResponse, decode_json
from gateway.origins import parse_origin
from gateway.outbox_model import DeliveryStatus
from gateway.routing import scoped
from gateway.services import services

MAX_ENDPOINTS = 1000
"""The endpoints listed at most (the busiest deployments have a handful of engines)."""
MAX_RECOVERED = 1000
"""The deliveries one recover call sends again at most (oldest first); ``more`` is true when it
sent that many (the window may hold others: call again, what is pending is not sent twice)."""


def endpoint_view(endpoint: Endpoint) -> dict[str, Any]:
    """An endpoint's state and counts as the API shows them."""
    return {
        "endpoint": endpoint.endpoint,
        "state": endpoint.state.value,
        "consecutiveFailures": endpoint.consecutive_failures,
        "lastSuccessAt": format_instant(endpoint.last_success_at),
        "lastFailureAt": format_instant(endpoint.last_failure_at),
        "openUntil": format_instant(endpoint.open_until),
        "counts": {
            "pending": endpoint.pending,
            "delivered": endpoint.delivered,
            "dead": endpoint.dead,
            "aborted": endpoint.aborted,
        },
    }


async def list_endpoints(request: Request, principal: Principal) -> Response:
    """``GET /api/v1/endpoints``: every endpoint deliveries go to, with its breaker's state."""
    svc = services(request)
    found = await svc.store.list_endpoints(principal.project_id, MAX_ENDPOINTS)
    return JSONResponse({"data": [endpoint_view(e) for e in found]})


class RecoverBody(msgspec.Struct, forbid_unknown_fields=True):
    """What ``POST /api/v1/deliveries/recover`` takes."""

    since: str
    until: str | None = None
    endpoint: str | None = None
    status: Literal["dead", "aborted"] = "dead"


def _endpoint(given: str | None) -> str | None:
    """The endpoint a recover names: ``channel:<name>`` or an origin (normalized)."""
    if given is None or given.startswith(CHANNEL_PREFIX):
        return given
    try:
        return parse_origin(given)
    except ValueError as exc:
        raise ApiError(
            400,
            f"endpoint: {exc}",
            hint="an origin such as https://engine.example.com:443, or channel:<name>",
        ) from None


async def recover(request: Request, principal: Principal) -> Response:
    """``POST /api/v1/deliveries/recover``: send every dead (or, with ``status``, aborted)
    delivery created in ``[since, until)`` (``until`` omitted: up to now, included) again, once
    each, keeping its ``webhook-id``."""
    svc = services(request)
    body = await decode_json(request, RecoverBody, svc.settings.max_body_bytes)
    now = svc.clock.now_ms()
    since = parse_instant(body.since, "since")
    until = now + 1 if body.until is None else parse_instant(body.until, "until")
    if since >= until:
        raise ApiError(400, "since must be before until (and before now when until is not given)")
    ids = await svc.store.recover_deliveries(
        since,
        until,
        now,
        status=DeliveryStatus(body.status),
        endpoint=_endpoint(body.endpoint),
        project_id=principal.project_id,
        limit=MAX_RECOVERED,
    )
    more = len(ids) == MAX_RECOVERED
    return JSONResponse({"recovered": len(ids), "more": more, "ids": ids}, status_code=202)


routes = [
    scoped("/api/v1/endpoints", list_endpoints, ["GET"], scope=Scope.EXECUTION_READ),
    scoped("/api/v1/deliveries/recover", recover, ["POST"], scope=Scope.EXECUTION_RETRY),
]
