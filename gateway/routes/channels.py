"""``/api/v1/channels``: where approvers are told an approval waits (see ``gateway.channels``).

A key bound to a project sees and manages only its project's channels; names are unique across
projects, so a name another project took is a 409. Secrets are never answered (masked).
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from gateway.auth import Principal, Scope
from gateway.channels import Channel, ChannelBody, ChannelPatch, channel_view
from gateway.http import ApiError, JSONResponse, decode_json
from gateway.pagination import page_limit
from gateway.routing import scoped
from gateway.services import Services, services

log = logging.getLogger("waitgate.channels")
READ, WRITE = Scope.CHANNEL_READ, Scope.CHANNEL_WRITE


def _not_found(name: str) -> ApiError:
    return ApiError(404, f'The channel "{name}" does not exist.')


async def _visible(svc: Services, principal: Principal, name: str) -> Channel:
    """The channel if it exists and the caller's project may see it; 404 otherwise."""
    channel = await svc.store.get_channel(name) if len(name) <= 64 else None
    if channel is None or principal.project_id not in (None, channel.project_id):
        raise _not_found(name)
    return channel


async def create_channel(request: Request, principal: Principal) -> Response:
    """``POST /api/v1/channels``."""
    svc = services(request)
    body = await decode_json(request, ChannelBody, svc.settings.max_body_bytes)
    channel = body.to_channel(principal.project_id, svc.dispatcher.origins)
    created = await svc.store.create_channel(channel, svc.clock.now_ms())
    if created is None:
        raise ApiError(409, f'A channel named "{channel.name}" exists already.')
    log.info("created", extra={"action": "channel.created", "channel": created.name})
    return JSONResponse(channel_view(created), status_code=201)


async def list_channels(request: Request, principal: Principal) -> Response:
    """``GET /api/v1/channels``: by name, paginated (``cursor`` is the last name)."""
    svc = services(request)
    limit = page_limit(request.query_params.get("limit") or None)
    after = request.query_params.get("cursor") or None
    found = await svc.store.list_channels(principal.project_id, after, limit + 1)
    next_cursor = found[limit - 1].name if len(found) > limit else None
    return JSONResponse(
        {"data": [channel_view(c) for c in found[:limit]], "nextCursor": next_cursor}
    )


async def get_channel(request: Request, principal: Principal) -> Response:
    """``GET /api/v1/channels/{name}``."""
    svc = services(request)
    return JSONResponse(channel_view(await _visible(svc, principal, request.path_params["name"])))


async def update_channel(request: Request, principal: Principal) -> Response:
    """``PATCH /api/v1/channels/{name}``."""
    svc = services(request)
    name: str = request.path_params["name"]
    body = await decode_json(request, ChannelPatch, svc.settings.max_body_bytes)
    channel = body.applied(await _visible(svc, principal, name), svc.dispatcher.origins)
    updated = await svc.store.update_channel(channel, svc.clock.now_ms())
    if updated is None:
        raise _not_found(name)
    log.info("updated", extra={"action": "channel.updated", "channel": name})
    return JSONResponse(channel_view(updated))


async def delete_channel(request: Request, principal: Principal) -> Response:
    """``DELETE /api/v1/channels/{name}``: approvals that name it can no longer be parked;
    notifications already written fail when they are sent."""
    svc = services(request)
    name: str = request.path_params["name"]
    channel = await _visible(svc, principal, name)
    if not await svc.store.delete_channel(name, principal.project_id):
        raise _not_found(name)
    log.info("deleted", extra={"action": "channel.deleted", "channel": name})
    return JSONResponse(channel_view(channel))


A_CHANNEL = "/api/v1/channels/{name}"
routes = [
    scoped("/api/v1/channels", create_channel, ["POST"], scope=WRITE),
    scoped("/api/v1/channels", list_channels, ["GET"], scope=READ),
    scoped(A_CHANNEL, get_channel, ["GET"], scope=READ),
    scoped(A_CHANNEL, update_channel, ["PATCH"], scope=WRITE),
    scoped(A_CHANNEL, delete_channel, ["DELETE"], scope=WRITE),
]
