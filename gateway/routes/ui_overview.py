"""The dashboard's overview, ``/ui/overview``: executions by status, the approvals waiting
longest, the deadlines of the next 24 hours as a chart drawn on the server (no script, no
asset), and the delivery endpoints with their breakers (for a key with ``execution:read``).
Signed in as the other dashboard pages (``gateway.routes.ui``); it needs ``execution:list``, and
a project-bound key sees its project only."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.auth import Scope
from gateway.domain import Status
from gateway.overview import BAR_WIDTH, CHART_HEIGHT, GAP, HOURS, MAX_APPROVALS, bars
from gateway.pages import page as render
from gateway.relative import absolute, relative
from gateway.routes.endpoints import MAX_ENDPOINTS
from gateway.routes.ui import signed_in


async def overview(request: Request) -> Response:
    """``GET /ui/overview``."""
    session = await signed_in(request, Scope.EXECUTION_LIST, "list executions")
    if isinstance(session, Response):
        return session
    svc, principal, csrf = session
    now = svc.clock.now_ms()
    seen = await svc.store.overview(principal.project_id, now)
    due = sum(seen.due_by_hour)
    endpoints = (
        await svc.store.list_endpoints(principal.project_id, MAX_ENDPOINTS)
        if principal.allows(Scope.EXECUTION_READ)
        else None
    )
    return render(
        "ui_overview.html",
        signed_in=True,
        csrf=csrf,
        nav_events=principal.allows(Scope.EVENT_READ),
        counts=[(s.value, seen.counts.get(s.value, 0)) for s in Status],
        total=sum(seen.counts.values()),
        approvals=[
            {
                "id": a.execution_id,
                "workflow": a.workflow_id,
                "title": a.title,
                "waiting": relative(a.parked_at, now),
                "parked_at": absolute(a.parked_at),
                "deadline": relative(a.wait_till, now),
                "deadline_at": absolute(a.wait_till),
            }
            for a in seen.approvals
        ],
        more_approvals=len(seen.approvals) == MAX_APPROVALS,
        bars=bars(seen.due_by_hour),
        due=due,
        chart={"width": HOURS * (BAR_WIDTH + GAP), "height": CHART_HEIGHT, "bar": BAR_WIDTH},
        endpoints=None
        if endpoints is None
        else [
            {
                "endpoint": e.endpoint,
                "state": e.state.value.replace("_", "-"),
                "failures": e.consecutive_failures,
                "last_success": relative(e.last_success_at, now) if e.last_success_at else "never",
                "last_failure": relative(e.last_failure_at, now) if e.last_failure_at else "never",
                "open_until": relative(e.open_until, now) if e.open_until else "",
                "pending": e.pending,
                "delivered": e.delivered,
                "dead": e.dead,
                "aborted": e.aborted,
            }
            for e in endpoints
        ],
    )


routes = [Route("/ui/overview", overview, methods=["GET"])]
