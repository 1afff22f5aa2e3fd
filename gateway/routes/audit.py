"""``GET /api/v1/executions/{id}/resume-attempts``: the audit trail of an execution."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.domain import format_instant
from gateway.http import JSONResponse
from gateway.routes.engine import api_caller, load_execution


async def resume_attempts(request: Request) -> Response:
    """Every call of the execution's resume URLs, accepted or refused, oldest first."""
    svc, principal, eid = await api_caller(request, "execution:read")
    await load_execution(svc, principal, eid)
    await svc.audit.flush()
    attempts = await svc.store.resume_attempts(eid)
    return JSONResponse(
        {
            "data": [
                {
                    "seq": a.seq,
                    "attemptedAt": format_instant(a.attempted_at),
                    "method": a.method,
                    "statusCode": a.status_code,
                    "outcome": a.outcome,
                    "reason": a.reason,
                    "ip": a.ip,
                    "userAgent": a.user_agent,
                }
                for a in attempts
            ]
        }
    )


routes = [
    Route("/api/v1/executions/{id:int}/resume-attempts", resume_attempts, methods=["GET"]),
]
