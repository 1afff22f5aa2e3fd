"""``/api/v1/event-sources``: the sources events come from (each with its inbound URL).

A key bound to a project sees and manages only its project's sources; names are unique across
projects (they are the inbound URL), so a name another project took is a 409.
"""

from __future__ import annotations

import dataclasses
import logging

from starlette.requests import Request
from starlette.responses import Response

from gateway.auth import Principal, Scope
from gateway.event_model import EventSource
from gateway.event_schemas import EventSourceBody, EventSourcePatch
from gateway.events import source_view
from gateway.http import ApiError, JSONResponse, decode_json
from gateway.pagination import page_limit
from gateway.routing import scoped
from gateway.services import Services, services

log = logging.getLogger("waitgate.event_sources")
READ, WRITE = Scope.EVENT_SOURCE_READ, Scope.EVENT_SOURCE_WRITE


def _not_found(name: str) -> ApiError:
    return ApiError(404, f'The event source "{name}" does not exist.')


async def visible_source(svc: Services, principal: Principal, name: str) -> EventSource:
    """The source if it exists and the caller's project may see it; 404 otherwise."""
    source = None
    if len(name) <= 64:
        source = await svc.store.get_event_source(name)
    if source is None or principal.project_id not in (None, source.project_id):
        raise _not_found(name)
    return source


async def create_source(request: Request, principal: Principal) -> Response:
    """``POST /api/v1/event-sources``."""
    svc = services(request)
    body = await decode_json(request, EventSourceBody, svc.settings.max_body_bytes)
    source = body.to_source(principal.project_id)
    created = await svc.store.create_event_source(source, svc.clock.now_ms())
    if created is None:
        raise ApiError(409, f'An event source named "{source.name}" exists already.')
    log.info("created", extra={"action": "event_source.created", "source": created.name})
    return JSONResponse(source_view(created, svc.settings.public_url), status_code=201)


async def list_sources(request: Request, principal: Principal) -> Response:
    """``GET /api/v1/event-sources``: by name, paginated (``cursor`` is the last name)."""
    svc = services(request)
    limit = page_limit(request.query_params.get("limit") or None)
    after = request.query_params.get("cursor") or None
    found = await svc.store.list_event_sources(principal.project_id, after, limit + 1)
    next_cursor = found[limit - 1].name if len(found) > limit else None
    data = [source_view(s, svc.settings.public_url) for s in found[:limit]]
    return JSONResponse({"data": data, "nextCursor": next_cursor})


async def get_source(request: Request, principal: Principal) -> Response:
    """``GET /api/v1/event-sources/{name}``."""
    svc = services(request)
    source = await visible_source(svc, principal, request.path_params["name"])
    return JSONResponse(source_view(source, svc.settings.public_url))


async def update_source(request: Request, principal: Principal) -> Response:
    """``PATCH /api/v1/event-sources/{name}``: replace the fields given."""
    svc = services(request)
    name: str = request.path_params["name"]
    body = await decode_json(request, EventSourcePatch, svc.settings.max_body_bytes)
    source = await visible_source(svc, principal, name)
    changed = body.applied(source)
    scoped_to = dataclasses.replace(changed, project_id=principal.project_id)
    updated = await svc.store.update_event_source(scoped_to, svc.clock.now_ms())
    if updated is None:
        raise _not_found(name)
    log.info("updated", extra={"action": "event_source.updated", "source": name})
    return JSONResponse(source_view(updated, svc.settings.public_url))


async def delete_source(request: Request, principal: Principal) -> Response:
    """``DELETE /api/v1/event-sources/{name}``: with its events; waits on it can no longer end
    by its events (they still end by their other conditions)."""
    svc = services(request)
    name: str = request.path_params["name"]
    source = await visible_source(svc, principal, name)
    if not await svc.store.delete_event_source(name, principal.project_id):
        raise _not_found(name)
    log.info("deleted", extra={"action": "event_source.deleted", "source": name})
    return JSONResponse(source_view(source, svc.settings.public_url))


A_SOURCE = "/api/v1/event-sources/{name}"
routes = [
    scoped("/api/v1/event-sources", create_source, ["POST"], scope=WRITE),
    scoped("/api/v1/event-sources", list_sources, ["GET"], scope=READ),
    scoped(A_SOURCE, get_source, ["GET"], scope=READ),
    scoped(A_SOURCE, update_source, ["PATCH"], scope=WRITE),
    scoped(A_SOURCE, delete_source, ["DELETE"], scope=WRITE),
]
