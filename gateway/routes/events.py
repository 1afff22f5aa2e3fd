"""Events: the inbound URL of each source, and ``/api/v1/events`` (publish, list, get, replay).

``POST /events/{name}`` is public: the source's ``verify`` is the authentication. Unknown
source 404, body over the limit 413, refused 401/403 (n8n's webhook error shape; counted,
logged, never stored, limited per address like bad resume URL signatures). A verified event
answers 200 ``{"matched": n}`` once the commit that recorded it and its resumes is durable, or
``{"matched": 0, "duplicate": true}`` for a redelivery.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.auth import Principal, Scope
from gateway.event_model import EVENT_STATUSES, SOURCE_NAME, EventQuery, IncomingEvent, StoredEvent
from gateway.event_schemas import PublishBody
from gateway.event_verify import convert_verify, verify
from gateway.events import event_view, provider_event, record, refused, replay, visible_event
from gateway.http import ApiError, JSONResponse, client_address, decode_json, read_body
from gateway.pagination import decode_cursor, encode_cursor, page_limit
from gateway.routing import scoped
from gateway.services import Services, services


def _no_source(name: str) -> ApiError:
    return ApiError(404, f'The event source "{name}" does not exist.')


async def receive_event(request: Request) -> Response:
    """``POST /events/{name}``: a provider's event, verified by its source."""
    svc = services(request)
    name: str = request.path_params["name"]
    source = await svc.store.get_event_source(name) if SOURCE_NAME.fullmatch(name) else None
    if source is None:
        raise _no_source(name)
    raw = await read_body(request, svc.settings.max_body_bytes)
    config = convert_verify(source.verify)
    ip = client_address(request)
    refusal = verify(config, request.headers, raw, ip, svc.clock.now_ms() / 1000)
    if refusal is not None:
        refused(source, refusal.status, ip)
        svc.limits.verification_failed(ip)
        raise ApiError(refusal.status, refusal.message, headers=refusal.headers or None)
    outcome = await record(svc, provider_event(source, config, request.headers.items(), raw))
    if outcome is None:
        raise _no_source(name)  # deleted meanwhile
    if outcome.duplicate:
        return JSONResponse({"matched": 0, "duplicate": True})
    return JSONResponse({"matched": len(outcome.resumed)})


async def publish_event(request: Request, principal: Principal) -> Response:
    """``POST /api/v1/events``: an internal event (no provider signature), matched like any."""
    svc = services(request)
    body = await decode_json(request, PublishBody, svc.settings.max_body_bytes)
    event = IncomingEvent(
        source=body.source,
        key=body.id,
        name=body.name,
        body=body.data,
        via="api",
        project_id=principal.project_id,
    )
    outcome = None
    if SOURCE_NAME.fullmatch(body.source):
        outcome = await record(svc, event)
    if outcome is None:
        raise ApiError(404, f'The event source "{body.source}" does not exist.')
    answer: dict[str, Any] = {"id": outcome.event_id, "matched": len(outcome.resumed)}
    if outcome.duplicate:
        answer["duplicate"] = True
    return JSONResponse(answer)


def event_query(params: Mapping[str, str], project_id: str | None) -> EventQuery:
    """The filters and page of a ``GET /api/v1/events`` request (400 ``ApiError`` if bad)."""
    before_id, limit = None, page_limit(params.get("limit"))
    if params.get("cursor"):
        before_id, limit = decode_cursor(params["cursor"])
    status = params.get("status")
    found = next((s for s in EVENT_STATUSES if s == status), None)
    if status is not None and found is None:
        raise ApiError(
            400,
            f"status must be one of {', '.join(EVENT_STATUSES)}; got {status!r} (refused "
            "events are never stored: see waitgate_event_refusals_total and event.refused)",
        )
    return EventQuery(
        limit=limit,
        before_id=before_id,
        source=params.get("source") or None,
        status=found,
        project_id=project_id,
    )


async def list_events(request: Request, principal: Principal) -> Response:
    """``GET /api/v1/events``: newest first, n8n's cursor pagination."""
    svc = services(request)
    query = event_query(request.query_params, principal.project_id)
    found = await svc.store.list_events(dataclasses.replace(query, limit=query.limit + 1))
    next_cursor = None
    if len(found) > query.limit:
        del found[query.limit :]
        next_cursor = encode_cursor(found[-1].id, query.limit)
    data = [event_view(e, include_data=False) for e in found]
    return JSONResponse({"data": data, "nextCursor": next_cursor})


async def _visible_event(svc: Services, request: Request, principal: Principal) -> StoredEvent:
    event_id: int = request.path_params["id"]
    event = await visible_event(svc, principal.project_id, event_id)
    if event is None:
        raise ApiError(404, f'The event "{event_id}" does not exist.')
    return event


async def get_event(request: Request, principal: Principal) -> Response:
    """``GET /api/v1/events/{id}``: with its body, headers and the waits it resumed."""
    svc = services(request)
    event = await _visible_event(svc, request, principal)
    return JSONResponse(event_view(event, include_data=True))


async def replay_event(request: Request, principal: Principal) -> Response:
    """``POST /api/v1/events/{id}/replay``: match a kept event again (a duplicate: 409)."""
    svc = services(request)
    event_id = (await _visible_event(svc, request, principal)).id
    outcome = await replay(svc, event_id, principal.project_id)
    if outcome is None:
        raise ApiError(409, f"Event {event_id} is a duplicate; replay the event it duplicates")
    event = await svc.store.get_event(event_id)
    view = {} if event is None else event_view(event, include_data=True)
    return JSONResponse({**view, "matched": len(outcome.resumed)})


AN_EVENT = "/api/v1/events/{id:int}"
routes = [
    Route("/events/{name}", receive_event, methods=["POST"]),
    scoped("/api/v1/events", publish_event, ["POST"], scope=Scope.EVENT_WRITE),
    scoped("/api/v1/events", list_events, ["GET"], scope=Scope.EVENT_READ),
    scoped(AN_EVENT, get_event, ["GET"], scope=Scope.EVENT_READ),
    scoped(f"{AN_EVENT}/replay", replay_event, ["POST"], scope=Scope.EVENT_WRITE),
]
