"""What the API routes of one execution share: its path, its id, and the answers to a
transition refused (404 for a missing execution, 409 that names the state that refused)."""

from __future__ import annotations

from starlette.requests import Request

from gateway import executions
from gateway.auth import Principal
from gateway.domain import Execution, Unchanged
from gateway.http import ApiError
from gateway.services import Services, services

AN_EXECUTION = "/api/v1/executions/{id:int}"
MAX_ID = 2**63 - 1


def not_found(eid: int) -> ApiError:
    """The answer for an execution that does not exist (or the caller's project may not see)."""
    return ApiError(404, f'The execution "{eid}" does not exist.')


def execution_id(request: Request) -> int:
    """The ``{id:int}`` path parameter; a 404 if it is too large to be an execution id."""
    value: int = request.path_params["id"]
    if value > MAX_ID:
        raise not_found(value)
    return value


def execution_target(request: Request) -> tuple[Services, int]:
    """The services and the execution id of a request to ``/executions/{id}/…``."""
    return services(request), execution_id(request)


async def load_execution(
    svc: Services, principal: Principal, eid: int, *, with_waits: bool = False
) -> Execution:
    """The execution if it exists and the caller's project may see it; 404 otherwise."""
    execution = await executions.visible(svc, principal.project_id, eid, with_waits=with_waits)
    if execution is None:
        raise not_found(eid)
    return execution


def refused(outcome: Unchanged, eid: int, only: str, joined: str = ";") -> ApiError:
    """A 404 if the execution is missing, else a 409: ``{only}{joined} {eid} is currently
    {status}``, the status of the state that refused the transition."""
    if outcome.execution is None:
        return not_found(eid)
    return ApiError(409, f"{only}{joined} {eid} is currently {outcome.execution.status.value}")
