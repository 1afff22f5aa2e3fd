"""The dashboard's events pages: ``/ui/events`` (recent events, filtered, paged) and
``/ui/events/{id}`` (one event, the waits it resumed, its Replay button).

Signed in as the executions pages are, with the same session cookie and CSRF token
(``gateway.routes.ui``). The pages need ``event:read``, Replay ``event:write``; what a page
cannot show answers as the dashboard's other refusals do (403, or 404 for an event the key's
project may not see). A project-bound key sees only its project's events and sources, as on
the API. Body and headers are masked as resume payloads are (``gateway.redaction``); credential
headers were never kept (``gateway.events``).
"""

from __future__ import annotations

import dataclasses
import functools
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway.auth import Principal, Scope
from gateway.event_model import EVENT_STATUSES, StoredEvent
from gateway.events import event_view, replay, visible_event
from gateway.http import ApiError
from gateway.pages import page as render
from gateway.pagination import encode_cursor
from gateway.redaction import shown_payload
from gateway.routes.events import event_query
from gateway.routes.ui import _csrf_ok, _form, _session, _to_login, signed_in
from gateway.services import Services

PAGE_SIZE = 50
MAX_SOURCES_LISTED = 250
MAX_RESUMED_SHOWN = 200
"""The waits an event page lists (an event may resume very many); the count is always shown."""
FLASHES = {
    "replay-done": "Replay: done; the waits it matches now were resumed.",
    "replay-none": "Replay: done; no open wait matches it.",
    "replay-failed": "Replay: not possible; it is a duplicate (replay the event it duplicates).",
}
"""The only messages ``?done=`` can show: a key, never text from the URL."""


def _refused(status: int, message: str, csrf: str, *, may_read: bool) -> Response:
    """The events page's answer for something this session may not see (``may_read``: the
    key has ``event:read``, so the navigation shows the events page)."""
    return render(
        "ui_events.html",
        status,
        flash=message,
        flash_bad=True,
        signed_in=True,
        csrf=csrf,
        nav_events=may_read,
        events=[],
        statuses=[],
        sources=[],
    )


EVENTS_REFUSED = functools.partial(_refused, may_read=False)
"""The events pages' answer to a key without ``event:read`` (no events link in the nav)."""


async def _source_names(svc: Services, principal: Principal) -> list[str]:
    """The sources the filter offers: those the key may read (its project's, if bound)."""
    if not principal.allows(Scope.EVENT_SOURCE_READ):
        return []
    found = await svc.store.list_event_sources(principal.project_id, None, MAX_SOURCES_LISTED)
    return [s.name for s in found]


async def events(request: Request) -> Response:
    """``GET /ui/events``: events newest first, filtered by source and status, paged."""
    session = await signed_in(request, Scope.EVENT_READ, "read events", EVENTS_REFUSED)
    if isinstance(session, Response):
        return session
    svc, principal, csrf = session
    params = request.query_params
    source, status = params.get("source", ""), params.get("status", "")
    wanted = {"limit": str(PAGE_SIZE), "source": source, "status": status}
    wanted["cursor"] = params.get("cursor", "")
    flash: str | None = None
    found: list[StoredEvent] = []
    next_cursor: str | None = None
    try:
        query = event_query({k: v for k, v in wanted.items() if v}, principal.project_id)
    except ApiError as exc:
        flash = exc.message
    else:
        found = await svc.store.list_events(dataclasses.replace(query, limit=query.limit + 1))
        if len(found) > query.limit:
            del found[query.limit :]
            next_cursor = encode_cursor(found[-1].id, query.limit)
    return render(
        "ui_events.html",
        400 if flash else 200,
        signed_in=True,
        now=svc.clock.now_ms(),
        csrf=csrf,
        nav_events=True,
        flash=flash,
        flash_bad=bool(flash),
        statuses=EVENT_STATUSES,
        status=status,
        source=source,
        sources=await _source_names(svc, principal),
        events=[event_view(e, include_data=False) for e in found],
        next_cursor=next_cursor,
        next_query=urlencode({"source": source, "status": status, "cursor": next_cursor or ""}),
    )


async def event(request: Request) -> Response:
    """``GET /ui/events/{id}``: the event, masked; the waits it resumed; Replay."""
    session = await signed_in(request, Scope.EVENT_READ, "read events", EVENTS_REFUSED)
    if isinstance(session, Response):
        return session
    svc, principal, csrf = session
    event_id: int = request.path_params["id"]
    found = await visible_event(svc, principal.project_id, event_id)
    if found is None:
        return _refused(404, f'The event "{event_id}" does not exist.', csrf, may_read=True)
    view = event_view(found, include_data=True)
    shown = shown_payload({"body": view["body"], "headers": view["headers"]}, redact=None)
    return render(
        "ui_event.html",
        signed_in=True,
        now=svc.clock.now_ms(),
        csrf=csrf,
        nav_events=True,
        flash=FLASHES.get(request.query_params.get("done", "")),
        ev=view,
        body=shown["body"],
        headers=shown["headers"],
        resumed=view["resumed"][:MAX_RESUMED_SHOWN],
        resumed_total=len(view["resumed"]),
        # A wait can wait only for a source of its execution's project, so every execution an
        # event resumed is of the event's project: one this key's project may see.
        link_executions=principal.allows(Scope.EXECUTION_READ),
        can_replay=principal.allows(Scope.EVENT_WRITE) and found.status != "duplicate",
    )


async def replay_event(request: Request) -> Response:
    """``POST /ui/events/{id}/replay`` with the session's CSRF token, then back to the event."""
    session = await _session(request)
    if session is None:
        return _to_login()
    svc, principal, _ = session
    form = await _form(request)
    if not _csrf_ok(svc, form.get("csrf", ""), request):
        raise ApiError(403, "Forbidden")
    if not principal.allows(Scope.EVENT_WRITE):
        raise ApiError(403, "Forbidden")
    event_id: int = request.path_params["id"]
    if await visible_event(svc, principal.project_id, event_id) is None:
        raise ApiError(404, f'The event "{event_id}" does not exist.')
    outcome = await replay(svc, event_id, principal.project_id)
    done = (
        "replay-failed" if outcome is None else "replay-done" if outcome.resumed else "replay-none"
    )
    return RedirectResponse(f"/ui/events/{event_id}?{urlencode({'done': done})}", status_code=303)


routes = [
    Route("/ui/events", events, methods=["GET"]),
    Route("/ui/events/{id:int}", event, methods=["GET"]),
    Route("/ui/events/{id:int}/replay", replay_event, methods=["POST"]),
]
