"""``GET /api/v1/executions/{id}/resume-attempts``: the audit trail of an execution."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.auth import Principal, Scope
from gateway.domain import ResumeAttempt, format_instant
from gateway.http import JSONResponse
from gateway.routes.common import AN_EXECUTION, execution_target, load_execution
from gateway.routing import scoped


async def resume_attempts(request: Request, principal: Principal) -> Response:
    """Every call of the execution's resume URLs, accepted or refused, oldest first."""
    svc, eid = execution_target(request)
    await load_execution(svc, principal, eid)
    await svc.audit.flush()
    attempts = await svc.store.resume_attempts(eid)
    return JSONResponse({"data": [attempt_view(a) for a in attempts]})


def attempt_view(attempt: ResumeAttempt) -> dict[str, Any]:
    """One resume attempt as the API (and the dashboard) shows it."""
    return {
        "seq": attempt.seq,
        "attemptedAt": format_instant(attempt.attempted_at),
        "method": attempt.method,
        "statusCode": attempt.status_code,
        "outcome": attempt.outcome,
        "reason": attempt.reason,
        "ip": attempt.ip,
        "userAgent": attempt.user_agent,
    }


routes = [
    scoped(f"{AN_EXECUTION}/resume-attempts", resume_attempts, ["GET"], scope=Scope.EXECUTION_READ),
]
