"""The engine API: create, park, finish and resume executions; read and write customData."""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.auth import Principal, authenticate
from gateway.domain import Execution, ResumedBy, Status, check_custom_data
from gateway.http import ApiError, JSONResponse, decode_json
from gateway.schemas import CreateExecution, FinishBody, ParkBody, ResumeBody
from gateway.services import Services, services
from gateway.views import execution_view

log = logging.getLogger("waitgate.engine")
WRITE = "execution:write"


def execution_id(request: Request) -> int:
    """The ``{id}`` path parameter; a 404 if it cannot be an execution id."""
    raw: str = request.path_params["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(404, f'The execution "{raw}" does not exist.')
    return int(raw)


async def load_execution(
    svc: Services, principal: Principal, eid: int, *, with_waits: bool = False
) -> Execution:
    """The execution if it exists and the caller's project may see it; 404 otherwise."""
    execution = await svc.store.get_execution(eid, with_waits=with_waits)
    if execution is None or (
        principal.project_id is not None and execution.project_id != principal.project_id
    ):
        raise ApiError(404, f'The execution "{eid}" does not exist.')
    return execution


async def api_caller(request: Request, scope: str) -> tuple[Services, Principal, int]:
    svc = services(request)
    principal = await authenticate(request, svc.store, scope)
    return svc, principal, execution_id(request)


def _view(svc: Services, execution: Execution, status_code: int = 200) -> JSONResponse:
    return JSONResponse(
        execution_view(execution, svc.signer, include_data=bool(execution.waits)),
        status_code=status_code,
    )


async def create_execution(request: Request) -> Response:
    """``POST /api/v1/executions``: a running execution and the resume URL of its first wait."""
    svc = services(request)
    principal = await authenticate(request, svc.store, WRITE)
    body = await decode_json(request, CreateExecution, svc.settings.max_body_bytes)
    new = body.to_new(
        principal.project_id, svc.settings.callback_url, svc.settings.callback_allowed_hosts
    )
    execution = await svc.store.create_execution(new, svc.clock.now_ms())
    log.info("created", extra={"action": "execution.created", "execution_id": execution.id})
    return _view(svc, execution, 201)


async def park_execution(request: Request) -> Response:
    """``POST /api/v1/executions/{id}/wait``: park a running execution at a new wait."""
    svc, principal, eid = await api_caller(request, WRITE)
    body = await decode_json(request, ParkBody, svc.settings.max_body_bytes)
    wait_till, webhook = body.validated()
    await load_execution(svc, principal, eid)
    outcome = await svc.store.park(eid, wait_till, webhook, svc.clock.now_ms())
    if outcome is None:
        latest = await load_execution(svc, principal, eid)
        raise ApiError(
            409,
            f"Only running executions can be parked; {eid} is currently {latest.status.value}",
        )
    svc.scheduler.notify(wait_till)
    log.info(
        "parked",
        extra={
            "action": "execution.parked",
            "execution_id": eid,
            "early_resume_applied": outcome.early_resume_applied,
        },
    )
    return _view(svc, outcome.execution)


async def finish_execution(request: Request) -> Response:
    """``POST /api/v1/executions/{id}/finish``: a running execution ends in success or error."""
    svc, principal, eid = await api_caller(request, WRITE)
    body = await decode_json(request, FinishBody, svc.settings.max_body_bytes)
    await load_execution(svc, principal, eid)
    status = Status(body.status)
    if not await svc.store.finish(eid, status, body.data, body.error, svc.clock.now_ms()):
        latest = await load_execution(svc, principal, eid)
        raise ApiError(
            409,
            f"Only running executions can be finished; {eid} is currently {latest.status.value}",
        )
    log.info("finished", extra={"action": "execution.finished", "execution_id": eid})
    return _view(svc, await load_execution(svc, principal, eid, with_waits=True))


async def resume_execution(request: Request) -> Response:
    """``POST /api/v1/executions/{id}/resume``: end the current wait now (resumedBy ``api``)."""
    svc, principal, eid = await api_caller(request, WRITE)
    body = await decode_json(request, ResumeBody, svc.settings.max_body_bytes)
    execution = await load_execution(svc, principal, eid)
    payload = {"body": body.data, "resumedBy": ResumedBy.API.value}
    if execution.status is not Status.WAITING or not await svc.store.resume(
        eid, execution.wait_seq, ResumedBy.API, payload, svc.clock.now_ms()
    ):
        latest = await load_execution(svc, principal, eid)
        raise ApiError(
            409,
            f"Only waiting executions can be resumed; {eid} is currently {latest.status.value}",
        )
    log.info("resumed by api", extra={"action": "wait.resumed", "execution_id": eid})
    return _view(svc, await load_execution(svc, principal, eid, with_waits=True))


async def custom_data(request: Request) -> Response:
    """``GET|PATCH|PUT /api/v1/executions/{id}/custom-data``: getAll, set, setAll."""
    scope = "execution:read" if request.method == "GET" else WRITE
    svc, principal, eid = await api_caller(request, scope)
    execution = await load_execution(svc, principal, eid)
    if request.method == "GET":
        return JSONResponse(execution.custom_data)
    values: dict[str, Any] = await decode_json(request, dict[str, Any], svc.settings.max_body_bytes)
    merged = await svc.store.set_custom_data(
        eid, check_custom_data(values), replace=request.method == "PUT"
    )
    if merged is None:
        raise ApiError(404, f'The execution "{eid}" does not exist.')
    return JSONResponse(merged)


async def custom_data_key(request: Request) -> Response:
    """``GET /api/v1/executions/{id}/custom-data/{key}``: get one value."""
    svc, principal, eid = await api_caller(request, "execution:read")
    execution = await load_execution(svc, principal, eid)
    key: str = request.path_params["key"]
    if key not in execution.custom_data:
        raise ApiError(404, f"customData of execution {eid} has no key {key!r}")
    return JSONResponse({"key": key, "value": execution.custom_data[key]})


routes = [
    Route("/api/v1/executions", create_execution, methods=["POST"]),
    Route("/api/v1/executions/{id}/wait", park_execution, methods=["POST"]),
    Route("/api/v1/executions/{id}/finish", finish_execution, methods=["POST"]),
    Route("/api/v1/executions/{id}/resume", resume_execution, methods=["POST"]),
    Route("/api/v1/executions/{id}/custom-data", custom_data, methods=["GET", "PATCH", "PUT"]),
    Route("/api/v1/executions/{id}/custom-data/{key}", custom_data_key, methods=["GET"]),
]
