"""n8n's public executions API: list, get, delete, stop, retry, and execution tags."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from gateway import executions
from gateway.auth import Principal, Scope
from gateway.domain import TAGS_MAX_ITEMS, Status, StopFilter, Unchanged, parse_instant
from gateway.errors import InvalidInput
from gateway.http import ApiError, JSONResponse, decode_json, read_body
from gateway.pagination import execution_query, flag, page
from gateway.routes.common import (
    AN_EXECUTION,
    execution_target,
    load_execution,
    not_found,
    refused,
)
from gateway.routes.tags import tag_view
from gateway.routing import scoped
from gateway.services import Services, services
from gateway.views import SIGNED_URL_SCOPE, execution_view


def redaction(request: Request, principal: Principal) -> tuple[bool | None, bool]:
    """``redactExecutionData`` and whether the caller may reveal; 403 for ``false`` without
    ``execution:reveal``. Every read that shows stored payloads takes these."""
    redact = flag(request.query_params, "redactExecutionData")
    can_reveal = principal.allows(Scope.EXECUTION_REVEAL)
    if redact is False and not can_reveal:
        raise ApiError(403, "Forbidden")
    return redact, can_reveal


def _data_options(request: Request, svc: Services, principal: Principal) -> dict[str, Any]:
    """``includeData``, ``redactExecutionData`` and ``ignoreDataSizeLimit`` as view options,
    and whether the caller may see signed URLs."""
    params = request.query_params
    redact, can_reveal = redaction(request, principal)
    ignore_limit = flag(params, "ignoreDataSizeLimit") is True
    return {
        "signed_urls": principal.allows(SIGNED_URL_SCOPE),
        "include_data": flag(params, "includeData") is True,
        "redact": redact,
        "can_reveal": can_reveal,
        "max_display_bytes": None if ignore_limit else svc.settings.max_display_bytes,
    }


async def list_executions(request: Request, principal: Principal) -> Response:
    """``GET /api/v1/executions``: newest first, n8n's cursor pagination and filters."""
    svc = services(request)
    query = execution_query(request.query_params, principal.project_id)
    options = _data_options(request, svc, principal)
    asked = request.query_params.get("projectId")
    if principal.project_id is not None and asked and asked != principal.project_id:
        return JSONResponse({"data": [], "nextCursor": None})  # filters AND: nothing matches
    found = await svc.store.list_executions(
        dataclasses.replace(query, limit=query.limit + 1), with_waits=options["include_data"]
    )
    next_cursor = page(found, query, lambda e: e.id)
    data = [execution_view(e, svc.signer, **options) for e in found]
    return JSONResponse({"data": data, "nextCursor": next_cursor})


async def get_execution(request: Request, principal: Principal) -> Response:
    """``GET /api/v1/executions/{id}``."""
    svc, eid = execution_target(request)
    options = _data_options(request, svc, principal)
    execution = await load_execution(svc, principal, eid, with_waits=options["include_data"])
    if options["signed_urls"] and execution.status is Status.WAITING and not execution.waits:
        # the approval and form URLs are the current wait's: the same fields as the park answer
        execution = await load_execution(svc, principal, eid, with_waits=True)
    return JSONResponse(execution_view(execution, svc.signer, **options))


async def delete_execution(request: Request, principal: Principal) -> Response:
    """``DELETE /api/v1/executions/{id}``: anything but a running execution."""
    svc, eid = execution_target(request)
    deleted = await executions.delete(svc, principal.project_id, eid)
    if isinstance(deleted, Unchanged):
        if deleted.execution is None:
            raise not_found(eid)
        raise ApiError(400, "Cannot delete a running execution")
    return JSONResponse(execution_view(deleted, svc.signer))


async def stop_execution(request: Request, principal: Principal) -> Response:
    """``POST /api/v1/executions/{id}/stop``: new, unknown, running or waiting → canceled."""
    svc, eid = execution_target(request)
    stopped = await executions.stop(svc, principal.project_id, eid)
    if isinstance(stopped, Unchanged):
        raise refused(stopped, eid, "Only running or waiting executions can be stopped", " and")
    return JSONResponse(execution_view(stopped, svc.signer))


class _StopManyBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    status: list[str]
    workflow_id: str | None = None
    started_after: str | None = None
    started_before: str | None = None


_STOP_STATUS = {"queued": Status.NEW, "running": Status.RUNNING, "waiting": Status.WAITING}


async def stop_many(request: Request, principal: Principal) -> Response:
    """``POST /api/v1/executions/stop``: cancel every matching execution."""
    svc = services(request)
    body = await decode_json(request, _StopManyBody, svc.settings.max_body_bytes)
    if not body.status:
        raise ApiError(400, "status must list at least one of queued, running, waiting")
    unknown = [s for s in body.status if s not in _STOP_STATUS]
    if unknown:
        raise ApiError(400, f"status {unknown[0]!r} is not one of queued, running, waiting")
    try:
        which = StopFilter(
            statuses=tuple(_STOP_STATUS[s] for s in dict.fromkeys(body.status)),
            workflow_id=body.workflow_id,
            project_id=principal.project_id,
            started_after=None
            if body.started_after is None
            else parse_instant(body.started_after, "startedAfter"),
            started_before=None
            if body.started_before is None
            else parse_instant(body.started_before, "startedBefore"),
        )
    except InvalidInput as exc:
        raise ApiError(400, str(exc)) from None
    return JSONResponse({"stopped": await executions.stop_many(svc, which)})


class _RetryBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    load_workflow: bool | None = None


async def retry_execution(request: Request, principal: Principal) -> Response:
    """``POST /api/v1/executions/{id}/retry``: a new execution with ``retryOf``."""
    svc, eid = execution_target(request)
    body = await read_body(request, svc.settings.max_body_bytes)
    if body.strip():
        try:
            msgspec.json.decode(body, type=_RetryBody)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ApiError(400, f"Invalid request body: {exc}") from None
    retried = await executions.retry(svc, principal.project_id, eid)
    if isinstance(retried, Unchanged):
        if retried.execution is not None and retried.execution.status is Status.SUCCESS:
            raise ApiError(409, "The execution succeeded, so it cannot be retried.")
        raise refused(
            retried, eid, "Only executions that failed, crashed or were canceled can be retried"
        )
    signed = principal.allows(SIGNED_URL_SCOPE)
    return JSONResponse(execution_view(retried.execution, svc.signer, signed_urls=signed))


class _TagId(msgspec.Struct, forbid_unknown_fields=True):
    id: str


async def execution_tags(request: Request, principal: Principal) -> Response:
    """``GET /api/v1/executions/{id}/tags``."""
    svc, eid = execution_target(request)
    await load_execution(svc, principal, eid)
    return await _tags_of(svc, eid)


async def set_execution_tags(request: Request, principal: Principal) -> Response:
    """``PUT /api/v1/executions/{id}/tags``: replace them with a list of ``{id}``."""
    svc, eid = execution_target(request)
    await load_execution(svc, principal, eid)
    ids = await decode_json(request, list[_TagId], svc.settings.max_body_bytes)
    if len(ids) > TAGS_MAX_ITEMS:
        raise ApiError(400, f"an execution may carry at most {TAGS_MAX_ITEMS} tags, got {len(ids)}")
    if not await svc.store.set_execution_tags(eid, tuple(t.id for t in ids)):
        raise ApiError(404, "One or more of the tags were not found")
    return await _tags_of(svc, eid)


async def _tags_of(svc: Services, eid: int) -> Response:
    tags: list[Any] = [tag_view(t) for t in await svc.store.execution_tags(eid)]
    return JSONResponse(tags)


routes = [
    scoped("/api/v1/executions", list_executions, ["GET"], scope=Scope.EXECUTION_LIST),
    scoped("/api/v1/executions/stop", stop_many, ["POST"], scope=Scope.EXECUTION_STOP),
    scoped(AN_EXECUTION, get_execution, ["GET"], scope=Scope.EXECUTION_READ),
    scoped(AN_EXECUTION, delete_execution, ["DELETE"], scope=Scope.EXECUTION_DELETE),
    scoped(f"{AN_EXECUTION}/stop", stop_execution, ["POST"], scope=Scope.EXECUTION_STOP),
    scoped(f"{AN_EXECUTION}/retry", retry_execution, ["POST"], scope=Scope.EXECUTION_RETRY),
    scoped(f"{AN_EXECUTION}/tags", execution_tags, ["GET"], scope=Scope.EXECUTION_TAGS_LIST),
    scoped(f"{AN_EXECUTION}/tags", set_execution_tags, ["PUT"], scope=Scope.EXECUTION_TAGS_UPDATE),
]
