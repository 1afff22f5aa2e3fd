"""``/api/v1/tags``: manage the tags executions can carry."""

from __future__ import annotations

import secrets
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from gateway.auth import Principal, Scope
from gateway.domain import Tag, format_instant
from gateway.http import ApiError, JSONResponse, decode_json
from gateway.pagination import page_limit
from gateway.routing import scoped
from gateway.services import Services, services

MAX_TAG_NAME = 24


def tag_view(tag: Tag) -> dict[str, Any]:
    """n8n's tag shape."""
    return {
        "id": tag.id,
        "name": tag.name,
        "createdAt": format_instant(tag.created_at),
        "updatedAt": format_instant(tag.updated_at),
    }


class _TagBody(msgspec.Struct, forbid_unknown_fields=True):
    name: str


def _name(body: _TagBody) -> str:
    name = body.name.strip()
    if not name or len(name) > MAX_TAG_NAME:
        raise ApiError(400, f"name must be 1 to {MAX_TAG_NAME} characters")
    if "\x00" in name:
        raise ApiError(400, "name must not contain the NUL character")
    return name


async def _tag(svc: Services, request: Request) -> Tag:
    tag_id: str = request.path_params["id"]
    tag = await svc.store.get_tag(tag_id)
    if tag is None:
        raise ApiError(404, "Not Found")
    return tag


async def list_tags(request: Request, principal: Principal) -> Response:
    """``GET /api/v1/tags``, paginated by id."""
    svc = services(request)
    limit = page_limit(request.query_params.get("limit") or None)  # empty: the default
    after = request.query_params.get("cursor") or None
    found = await svc.store.list_tags(limit + 1, after)
    next_cursor = found[limit - 1].id if len(found) > limit else None
    return JSONResponse({"data": [tag_view(t) for t in found[:limit]], "nextCursor": next_cursor})


async def create_tag(request: Request, principal: Principal) -> Response:
    """``POST /api/v1/tags``."""
    svc = services(request)
    name = _name(await decode_json(request, _TagBody, svc.settings.max_body_bytes))
    tag = await svc.store.create_tag(
        secrets.token_hex(8), name, svc.clock.now_ms(), principal.project_id
    )
    if tag is None:
        raise ApiError(409, "Tag already exists")
    return JSONResponse(tag_view(tag), status_code=201)


async def get_tag(request: Request, principal: Principal) -> Response:
    """``GET /api/v1/tags/{id}``."""
    return JSONResponse(tag_view(await _tag(services(request), request)))


async def delete_tag(request: Request, principal: Principal) -> Response:
    """``DELETE /api/v1/tags/{id}``.

    A key bound to a project renames or deletes only tags its project created and no execution
    of another project carries (403 otherwise); a key without a project manages every tag.
    """
    svc = services(request)
    project = principal.project_id
    deleted = await svc.store.delete_tag(request.path_params["id"], project)
    if deleted is None:
        await _manageable(svc, request, project)
        raise ApiError(404, "Not Found")  # deleted meanwhile
    return JSONResponse(tag_view(deleted))


async def rename_tag(request: Request, principal: Principal) -> Response:
    """``PUT /api/v1/tags/{id}``, under the rule of ``delete_tag``."""
    svc = services(request)
    tag_id: str = request.path_params["id"]
    project = principal.project_id
    name = _name(await decode_json(request, _TagBody, svc.settings.max_body_bytes))
    await _manageable(svc, request, project)
    renamed = await svc.store.rename_tag(tag_id, name, svc.clock.now_ms(), project)
    if renamed is None:
        await _manageable(svc, request, project)
        raise ApiError(409, "Tag already exists")
    return JSONResponse(tag_view(renamed))


async def _manageable(svc: Services, request: Request, project_id: str | None) -> None:
    """404 for an unknown tag, 403 for one this project's key may not rename or delete."""
    tag = await _tag(svc, request)
    if not await svc.store.tag_manageable(tag.id, project_id):
        raise ApiError(
            403,
            f"Tag {tag.name!r} was not created by project {project_id!r} or is used by "
            "another project; only a key without a project may rename or delete it",
        )


routes = [
    scoped("/api/v1/tags", list_tags, ["GET"], scope=Scope.TAG_READ),
    scoped("/api/v1/tags", create_tag, ["POST"], scope=Scope.TAG_WRITE),
    scoped("/api/v1/tags/{id}", get_tag, ["GET"], scope=Scope.TAG_READ),
    scoped("/api/v1/tags/{id}", rename_tag, ["PUT"], scope=Scope.TAG_WRITE),
    scoped("/api/v1/tags/{id}", delete_tag, ["DELETE"], scope=Scope.TAG_WRITE),
]
