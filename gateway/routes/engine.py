"""The engine API: create, park, finish and resume executions; read and write customData."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway import executions
from gateway.approvals import NotAllowed, decision_view
from gateway.auth import Principal, Scope
from gateway.domain import Execution, Status, Unchanged, check_custom_data
from gateway.form_schema import Refused
from gateway.http import ApiError, JSONResponse, decode_json
from gateway.routes.common import (
    AN_EXECUTION,
    execution_target,
    load_execution,
    not_found,
    refused,
)
from gateway.routing import scoped
from gateway.schemas import (
    CreateExecution,
    DecisionBody,
    FinishBody,
    ParkBody,
    RespondBody,
    ResumeBody,
)
from gateway.services import Services, services
from gateway.signed import audit_attempt
from gateway.trace_context import from_headers
from gateway.views import execution_view

WRITE = Scope.EXECUTION_WRITE


def _view(
    svc: Services, execution: Execution, status_code: int = 200, warnings: tuple[str, ...] = ()
) -> JSONResponse:
    view = execution_view(
        execution, svc.signer, signed_urls=True, include_data=bool(execution.waits)
    )
    if warnings:
        view["warnings"] = list(warnings)
    return JSONResponse(view, status_code=status_code)


async def create_execution(request: Request, principal: Principal) -> Response:
    """``POST /api/v1/executions``: a running execution and the resume URL of its first wait;
    with ``wait``, the execution parked at that wait in the same write."""
    svc = services(request)
    body = await decode_json(request, CreateExecution, svc.settings.max_body_bytes)
    new = body.to_new(principal.project_id, svc.settings.callback_url, svc.dispatcher.origins)
    trace = from_headers(request.headers)
    if body.wait is None:
        return _view(svc, await executions.create(svc, new, trace), 201)
    wait_till, webhook = body.wait.validated()
    events = body.wait.event_conditions()
    parked = await executions.create_parked(svc, new, wait_till, webhook, events, trace)
    return _view(svc, parked.execution, 201, parked.warnings)


async def park_execution(request: Request, principal: Principal) -> Response:
    """``POST /api/v1/executions/{id}/wait``: park a running execution at a new wait."""
    svc, eid = execution_target(request)
    body = await decode_json(request, ParkBody, svc.settings.max_body_bytes)
    wait_till, webhook = body.validated()
    events = body.event_conditions()
    trace = from_headers(request.headers)
    outcome = await executions.park(
        svc, principal.project_id, eid, wait_till, webhook, events, trace
    )
    if isinstance(outcome, Unchanged):
        raise refused(outcome, eid, "Only running executions can be parked")
    return _view(svc, outcome.execution, warnings=outcome.warnings)


async def finish_execution(request: Request, principal: Principal) -> Response:
    """``POST /api/v1/executions/{id}/finish``: a running execution ends in success or error."""
    svc, eid = execution_target(request)
    body = await decode_json(request, FinishBody, svc.settings.max_body_bytes)
    finished = await executions.finish(
        svc, principal.project_id, eid, body.status, body.data, body.error
    )
    if isinstance(finished, Unchanged):
        raise refused(finished, eid, "Only running executions can be finished")
    return _view(svc, finished)


async def respond(request: Request, principal: Principal) -> Response:
    """``POST /api/v1/executions/{id}/respond``: answer the caller held by a responseNode wait."""
    svc, eid = execution_target(request)
    body = (await decode_json(request, RespondBody, svc.settings.max_body_bytes)).validated()
    outcome = await executions.respond(
        svc, principal.project_id, eid, body.status_code, body.headers, body.body
    )
    if isinstance(outcome, Unchanged):
        if outcome.execution is None:
            raise not_found(eid)
        raise ApiError(409, f"Execution {eid} has no resumed wait whose caller awaits a response")
    if not outcome.kept:
        raise ApiError(
            409, f"The caller of wait {outcome.seq} of execution {eid} was answered already"
        )
    return JSONResponse(
        {"executionId": eid, "seq": outcome.seq, "statusCode": outcome.answer.status_code}
    )


async def resume_execution(request: Request, principal: Principal) -> Response:
    """``POST /api/v1/executions/{id}/resume``: end the current wait now (resumedBy ``api``);
    at a schema form's wait ``data`` is the form's data, and must match its schema."""
    svc, eid = execution_target(request)
    body = await decode_json(request, ResumeBody, svc.settings.max_body_bytes)
    resumed = await executions.resume_with_data(svc, principal.project_id, eid, body.data)
    if isinstance(resumed, Refused):
        problems = [{"field": p.field, "message": p.message} for p in resumed.problems]
        raise ApiError(400, f"data does not match the form's schema: {resumed}", errors=problems)
    if isinstance(resumed, Unchanged):
        raise refused(resumed, eid, "Only waiting executions can be resumed")
    return _view(svc, resumed)


async def record_decision(request: Request, principal: Principal) -> Response:
    """``POST /api/v1/executions/{id}/decisions``: an approver's decision made elsewhere, on the
    current wait; it resumes the wait when it meets the approval's rule."""
    svc, eid = execution_target(request)
    body = await decode_json(request, DecisionBody, svc.settings.max_body_bytes)
    try:
        outcome = await executions.decide_current(
            svc,
            principal.project_id,
            eid,
            body.approver,
            body.decision,
            tuple(body.options),
            body.comment,
            body.via,
        )
    except NotAllowed as exc:
        raise ApiError(403, str(exc)) from None
    if isinstance(outcome, Unchanged):
        if outcome.execution is not None and outcome.execution.status is Status.WAITING:
            raise ApiError(409, f"Execution {eid} is not waiting for approvers' decisions")
        raise refused(outcome, eid, "Only waiting executions take decisions")
    seq = outcome.seq
    if outcome.duplicate:
        raise ApiError(409, f"Approver {body.approver!r} has already decided wait {seq}")
    reason = f"approver {body.approver} decided {body.decision} via {body.via}"
    audit_attempt(svc, request, eid, seq, 201, reason, "accepted")
    multiple = outcome.spec.multiple
    return JSONResponse(
        {
            "executionId": eid,
            "seq": seq,
            "status": outcome.execution.status.value,
            "ended": outcome.ended,
            "decisions": [decision_view(d, multiple=multiple) for d in outcome.decisions],
        },
        status_code=201,
    )


async def custom_data(request: Request, principal: Principal) -> Response:
    """``GET /api/v1/executions/{id}/custom-data``: getAll."""
    svc, eid = execution_target(request)
    execution = await load_execution(svc, principal, eid)
    return JSONResponse(execution.custom_data)


async def set_custom_data(request: Request, principal: Principal) -> Response:
    """``PATCH|PUT /api/v1/executions/{id}/custom-data``: set, setAll."""
    svc, eid = execution_target(request)
    await load_execution(svc, principal, eid)
    values: dict[str, Any] = await decode_json(request, dict[str, Any], svc.settings.max_body_bytes)
    merged = await svc.store.set_custom_data(
        eid, check_custom_data(values), replace=request.method == "PUT"
    )
    if merged is None:
        raise not_found(eid)
    return JSONResponse(merged)


async def custom_data_key(request: Request, principal: Principal) -> Response:
    """``GET /api/v1/executions/{id}/custom-data/{key}``: get one value."""
    svc, eid = execution_target(request)
    execution = await load_execution(svc, principal, eid)
    key: str = request.path_params["key"]
    if key not in execution.custom_data:
        raise ApiError(404, f"customData of execution {eid} has no key {key!r}")
    return JSONResponse({"key": key, "value": execution.custom_data[key]})


routes = [
    scoped("/api/v1/executions", create_execution, ["POST"], scope=WRITE),
    scoped(f"{AN_EXECUTION}/wait", park_execution, ["POST"], scope=WRITE),
    scoped(f"{AN_EXECUTION}/finish", finish_execution, ["POST"], scope=WRITE),
    scoped(f"{AN_EXECUTION}/respond", respond, ["POST"], scope=WRITE),
    scoped(f"{AN_EXECUTION}/resume", resume_execution, ["POST"], scope=WRITE),
    scoped(f"{AN_EXECUTION}/decisions", record_decision, ["POST"], scope=WRITE),
    scoped(f"{AN_EXECUTION}/custom-data", custom_data, ["GET"], scope=Scope.EXECUTION_READ),
    scoped(f"{AN_EXECUTION}/custom-data", set_custom_data, ["PATCH", "PUT"], scope=WRITE),
    scoped(
        f"{AN_EXECUTION}/custom-data/{{key}}", custom_data_key, ["GET"], scope=Scope.EXECUTION_READ
    ),
]
