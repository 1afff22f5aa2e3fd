"""The engine API: create, park, finish and resume executions; read and write customData."""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway import metrics
from gateway.auth import Principal, Scope
from gateway.caller_auth import kept_checker
from gateway.domain import (
    Execution,
    ResponseMode,
    ResumedBy,
    Status,
    StoredAnswer,
    check_custom_data,
)
from gateway.early import ParkOutcome, refused_early_attempt
from gateway.held import explicit_answer, finished_answer, json_answer
from gateway.http import ApiError, JSONResponse, decode_json
from gateway.routing import scoped
from gateway.schemas import CreateExecution, FinishBody, ParkBody, RespondBody, ResumeBody
from gateway.services import Services, services
from gateway.views import execution_view

log = logging.getLogger("waitgate.engine")
WRITE = Scope.EXECUTION_WRITE
MAX_ID = 2**63 - 1


def execution_id(request: Request) -> int:
    """The ``{id:int}`` path parameter; a 404 if it is too large to be an execution id."""
    value: int = request.path_params["id"]
    if value > MAX_ID:
        raise ApiError(404, f'The execution "{value}" does not exist.')
    return value


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


def execution_target(request: Request) -> tuple[Services, int]:
    """The services and the execution id of a request to ``/executions/{id}/…``."""
    return services(request), execution_id(request)


def _view(svc: Services, execution: Execution, status_code: int = 200) -> JSONResponse:
    return JSONResponse(
        execution_view(execution, svc.signer, signed_urls=True, include_data=bool(execution.waits)),
        status_code=status_code,
    )


async def create_execution(request: Request, principal: Principal) -> Response:
    """``POST /api/v1/executions``: a running execution and the resume URL of its first wait."""
    svc = services(request)
    body = await decode_json(request, CreateExecution, svc.settings.max_body_bytes)
    new = body.to_new(principal.project_id, svc.settings.callback_url, svc.dispatcher.origins)
    execution = await svc.store.create_execution(new, svc.clock.now_ms())
    log.info("created", extra={"action": "execution.created", "execution_id": execution.id})
    return _view(svc, execution, 201)


async def park_execution(request: Request, principal: Principal) -> Response:
    """``POST /api/v1/executions/{id}/wait``: park a running execution at a new wait.

    A caller still held by the previous wait (lastNode / responseNode) is answered with the
    new wait: its status, deadline and resume URL.
    """
    svc, eid = execution_target(request)
    body = await decode_json(request, ParkBody, svc.settings.max_body_bytes)
    wait_till, webhook = body.validated()
    events = body.event_conditions()
    if principal.project_id is not None:
        await load_execution(svc, principal, eid)  # another project's execution is a 404
    now = svc.clock.now_ms()
    outcome = await svc.store.park(
        eid, wait_till, webhook, now, admit_early=kept_checker, events=events
    )
    if outcome is None:
        latest = await load_execution(svc, principal, eid)
        raise ApiError(
            409,
            f"Only running executions can be parked; {eid} is currently {latest.status.value}",
        )
    metrics.PARKS.inc()
    view = execution_view(outcome.execution, svc.signer, signed_urls=True, include_data=True)
    parked_seq = max(w.seq for w in outcome.execution.waits)
    new_wait = {k: view.get(k) for k in ("id", "status", "waitTill", "resumeUrl")}
    await _answer_held_caller(svc, eid, parked_seq - 1, json_answer(200, new_wait, "parked"))
    _audit_early_refusal(svc, eid, parked_seq, outcome, now)
    log.info(
        "parked",
        extra={
            "action": "execution.parked",
            "execution_id": eid,
            "early_resume_applied": outcome.early_resume_applied,
            "kept_event": outcome.kept_event,
        },
    )
    if outcome.kept_event is not None:
        metrics.RESUMES.labels("event").inc()
    return JSONResponse(view)


def _audit_early_refusal(svc: Services, eid: int, seq: int, outcome: ParkOutcome, now: int) -> None:
    """Audit an early resume the parked wait's caller checks refused (it was dropped)."""
    if outcome.early is None or outcome.early_refusal is None:
        return
    svc.audit.record(refused_early_attempt(eid, seq, outcome.early, outcome.early_refusal, now))
    log.info(
        "early resume refused",
        extra={"action": "wait.early_refused", "execution_id": eid, "seq": seq},
    )


async def _answer_held_caller(svc: Services, eid: int, seq: int, answer: StoredAnswer) -> None:
    """Keep ``answer`` for a caller held by wait ``seq``, if that wait holds its caller."""
    if seq < 1:
        return
    wait = await svc.store.get_wait(eid, seq)
    if wait is None or wait.webhook is None or not wait.webhook.holds_caller:
        return
    await svc.store.put_held_answer(eid, seq, answer, svc.clock.now_ms())


async def finish_execution(request: Request, principal: Principal) -> Response:
    """``POST /api/v1/executions/{id}/finish``: a running execution ends in success or error.

    A caller held by the last wait gets the result (``responseData`` of a lastNode wait:
    firstEntryJson, allEntries or noData), or 500 ``Error in workflow``.
    """
    svc, eid = execution_target(request)
    body = await decode_json(request, FinishBody, svc.settings.max_body_bytes)
    await load_execution(svc, principal, eid)
    status = Status(body.status)
    if not await svc.store.finish(eid, status, body.data, body.error, svc.clock.now_ms()):
        latest = await load_execution(svc, principal, eid)
        raise ApiError(
            409,
            f"Only running executions can be finished; {eid} is currently {latest.status.value}",
        )
    finished = await load_execution(svc, principal, eid, with_waits=True)
    last = finished.waits[-1] if finished.waits else None
    if last is not None and last.webhook is not None:
        choice = last.webhook.response_data if isinstance(last.webhook.response_data, str) else ""
        answer = finished_answer(body.status, body.data, choice or "firstEntryJson")
        await _answer_held_caller(svc, eid, last.seq, answer)
    log.info("finished", extra={"action": "execution.finished", "execution_id": eid})
    return _view(svc, finished)


async def respond(request: Request, principal: Principal) -> Response:
    """``POST /api/v1/executions/{id}/respond``: answer the caller held by a responseNode wait."""
    svc, eid = execution_target(request)
    body = (await decode_json(request, RespondBody, svc.settings.max_body_bytes)).validated()
    execution = await load_execution(svc, principal, eid, with_waits=True)
    resumed = [w for w in execution.waits if w.resumed_at is not None]
    last = resumed[-1] if resumed else None
    spec = None if last is None else last.webhook
    if last is None or spec is None or spec.response_mode is not ResponseMode.RESPONSE_NODE:
        raise ApiError(409, f"Execution {eid} has no resumed wait whose caller awaits a response")
    answer = explicit_answer(body.status_code, body.headers, body.body)
    if not await svc.store.put_held_answer(eid, last.seq, answer, svc.clock.now_ms()):
        raise ApiError(
            409, f"The caller of wait {last.seq} of execution {eid} was answered already"
        )
    return JSONResponse({"executionId": eid, "seq": last.seq, "statusCode": answer.status_code})


async def resume_execution(request: Request, principal: Principal) -> Response:
    """``POST /api/v1/executions/{id}/resume``: end the current wait now (resumedBy ``api``)."""
    svc, eid = execution_target(request)
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
    metrics.RESUMES.labels("api").inc()
    log.info("resumed by api", extra={"action": "wait.resumed", "execution_id": eid})
    return _view(svc, await load_execution(svc, principal, eid, with_waits=True))


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
        raise ApiError(404, f'The execution "{eid}" does not exist.')
    return JSONResponse(merged)


async def custom_data_key(request: Request, principal: Principal) -> Response:
    """``GET /api/v1/executions/{id}/custom-data/{key}``: get one value."""
    svc, eid = execution_target(request)
    execution = await load_execution(svc, principal, eid)
    key: str = request.path_params["key"]
    if key not in execution.custom_data:
        raise ApiError(404, f"customData of execution {eid} has no key {key!r}")
    return JSONResponse({"key": key, "value": execution.custom_data[key]})


AN_EXECUTION = "/api/v1/executions/{id:int}"
routes = [
    scoped("/api/v1/executions", create_execution, ["POST"], scope=WRITE),
    scoped(f"{AN_EXECUTION}/wait", park_execution, ["POST"], scope=WRITE),
    scoped(f"{AN_EXECUTION}/finish", finish_execution, ["POST"], scope=WRITE),
    scoped(f"{AN_EXECUTION}/respond", respond, ["POST"], scope=WRITE),
    scoped(f"{AN_EXECUTION}/resume", resume_execution, ["POST"], scope=WRITE),
    scoped(f"{AN_EXECUTION}/custom-data", custom_data, ["GET"], scope=Scope.EXECUTION_READ),
    scoped(f"{AN_EXECUTION}/custom-data", set_custom_data, ["PATCH", "PUT"], scope=WRITE),
    scoped(
        f"{AN_EXECUTION}/custom-data/{{key}}", custom_data_key, ["GET"], scope=Scope.EXECUTION_READ
    ),
]
