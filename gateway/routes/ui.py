"""The executions dashboard at ``/ui``: sign in with an API key, list, inspect, act.

The session is the key's hash in an itsdangerous-signed cookie (HttpOnly, SameSite=Strict,
path ``/ui``, 12 hours; behind https Secure and named ``__Secure-waitgate_ui``); every form,
sign-out included, carries a CSRF token bound to that session, and the sign-in form a signed
double-submit token. Flash messages are a closed set chosen by key. What a session may see and
do follows the key's scopes and project, as on the API. ``WAITGATE_UI_ORIGIN`` moves it all to
an origin of its own (see ``gateway.ui_origin``).
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable
from urllib.parse import parse_qs, urlencode

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway import executions
from gateway.approvals import decision_view
from gateway.auth import Principal, Scope, hash_key
from gateway.domain import RETRYABLE, STOPPABLE, Execution, Retried, Status, Unchanged
from gateway.http import ApiError, read_body
from gateway.pages import page as render
from gateway.pagination import execution_query, page
from gateway.retention import retention_in_words
from gateway.routes.audit import attempt_view
from gateway.routes.common import load_execution, not_found
from gateway.routes.deliveries import delivery_view
from gateway.services import Services, services
from gateway.views import SIGNED_URL_SCOPE, execution_view

SESSION_COOKIE = "waitgate_ui"
SESSION_SECONDS = 12 * 3600
LOGIN_COOKIE = "waitgate_login"
LOGIN_SECONDS = 3600
ACTIONS = {
    "stop": (Scope.EXECUTION_STOP, "Stop", "danger"),
    "retry": (Scope.EXECUTION_RETRY, "Retry", ""),
    "resume": (Scope.EXECUTION_WRITE, "Resume now", ""),
}
CD_MALFORMED = "The customData filter must read key=value (for example tenant=acme)."
CONFIRMED = frozenset({"stop"})
"""Destructive actions: a first POST shows "Are you sure?"; only its signed form acts."""
SURE_SECONDS = 600
FLASHES = {
    f"{name}-{result}": f"{label}: {text}"
    for name, (_, label, _) in ACTIONS.items()
    for result, text in (("done", "done."), ("failed", "not possible now."))
}
"""The only messages ``?done=`` can show: a key, never text from the URL."""


def _secure(svc: Services) -> bool:
    return (svc.settings.ui_origin or svc.settings.public_url).startswith("https://")


def _cookie(svc: Services, name: str) -> str:
    """A cookie's name: ``__Secure-`` prefixed behind https, so only a secure origin sets it."""
    return f"__Secure-{name}" if _secure(svc) else name


def _set_cookie(
    svc: Services, response: Response, name: str, value: str, path: str, max_age: int
) -> None:
    """A host-only cookie (no ``Domain``) that scripts cannot read, scoped to ``path``;
    ``max_age`` 0 deletes it."""
    response.set_cookie(
        _cookie(svc, name),
        value,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=_secure(svc),
        path=path,
    )


def _serializer(svc: Services, purpose: str) -> URLSafeTimedSerializer:
    keys = [k.reveal() for k in reversed(svc.settings.secret_keys)]
    return URLSafeTimedSerializer(keys, salt=f"waitgate.ui.{purpose}")


async def _session(request: Request) -> tuple[Services, Principal, str] | None:
    svc = services(request)
    try:
        key_hash = _serializer(svc, "session").loads(
            request.cookies.get(_cookie(svc, SESSION_COOKIE), ""), max_age=SESSION_SECONDS
        )
    except BadSignature:
        return None
    principal = await svc.auth.by_key_hash(str(key_hash))
    if principal is None:
        return None
    return svc, principal, _serializer(svc, "csrf").dumps(key_hash)


async def _form(request: Request) -> dict[str, str]:
    body = (await read_body(request, 16 * 1024)).decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(body).items()}


def _csrf_ok(svc: Services, token: str, request: Request) -> bool:
    try:
        bound = _serializer(svc, "csrf").loads(token, max_age=SESSION_SECONDS)
        session = _serializer(svc, "session").loads(
            request.cookies.get(_cookie(svc, SESSION_COOKIE), "")
        )
    except BadSignature:
        return False
    return bool(bound == session)


def _sure_ok(svc: Services, token: str, eid: int, action: str) -> bool:
    """Whether a form is the "Are you sure?" step's own, for this execution and action."""
    try:
        signed = _serializer(svc, "sure").loads(token, max_age=SURE_SECONDS)
    except BadSignature:
        return False
    return bool(signed == [eid, action])


def _refused(status: int, message: str, csrf: str) -> Response:
    """The dashboard's page for something this session may not see or do."""
    return render(
        "ui_list.html",
        status,
        flash=message,
        flash_bad=True,
        signed_in=True,
        csrf=csrf,
        executions=[],
        statuses=[],
    )


def _to_login() -> Response:
    return RedirectResponse("/ui/login", status_code=303)


Session = tuple[Services, Principal, str]
"""A signed-in dashboard caller: the services, the key's principal, the session's CSRF token."""


async def signed_in(
    request: Request,
    scope: Scope,
    may_not: str,
    refused: Callable[[int, str, str], Response] = _refused,
) -> Session | Response:
    """The session of a dashboard page that needs ``scope``; otherwise the answer to give: the
    sign-in page without a session, ``refused`` (a 403 "This key may not {may_not}.") without
    the scope."""
    session = await _session(request)
    if session is None:
        return _to_login()
    if not session[1].allows(scope):
        return refused(403, f"This key may not {may_not}.", session[2])
    return session


def _login_page(svc: Services, status: int = 200, flash: str | None = None) -> Response:
    """The sign-in form with a fresh double-submit token: a random nonce in a cookie of the
    form's own path, and the same nonce signed in the form."""
    nonce = secrets.token_urlsafe(16)
    response = render(
        "ui_login.html",
        status,
        flash=flash,
        flash_bad=bool(flash),
        csrf=_serializer(svc, "login").dumps(nonce),
    )
    _set_cookie(svc, response, LOGIN_COOKIE, nonce, "/ui/login", LOGIN_SECONDS)
    return response


def _login_token_ok(svc: Services, token: str, request: Request) -> bool:
    nonce = request.cookies.get(_cookie(svc, LOGIN_COOKIE), "")
    try:
        signed = _serializer(svc, "login").loads(token, max_age=LOGIN_SECONDS)
    except BadSignature:
        return False
    return bool(nonce) and secrets.compare_digest(str(signed), nonce)


async def login(request: Request) -> Response:
    """``GET|POST /ui/login``: the form, and signing in with an API key (CSRF-checked)."""
    svc = services(request)
    if request.method == "GET":
        return _login_page(svc)
    form = await _form(request)
    if not _login_token_ok(svc, form.get("csrf", ""), request):
        return _login_page(svc, 403, "This sign-in form has expired; please sign in again.")
    key = form.get("api_key", "")
    key_hash = hash_key(key)
    if not key or await svc.auth.by_key_hash(key_hash) is None:
        return _login_page(svc, 401, "That API key is not valid.")
    response = RedirectResponse("/ui", status_code=303)
    _set_cookie(svc, response, LOGIN_COOKIE, "", "/ui/login", 0)
    session = _serializer(svc, "session").dumps(key_hash)
    _set_cookie(svc, response, SESSION_COOKIE, session, "/ui", SESSION_SECONDS)
    return response


async def logout(request: Request) -> Response:
    """``POST /ui/logout`` with the session's CSRF token."""
    svc = services(request)
    if not _csrf_ok(svc, (await _form(request)).get("csrf", ""), request):
        raise ApiError(403, "Forbidden")
    response = RedirectResponse("/ui/login", status_code=303)
    _set_cookie(svc, response, SESSION_COOKIE, "", "/ui", 0)
    return response


async def listing(request: Request) -> Response:
    """``GET /ui``: executions, newest first, with status, workflow and customData filters."""
    session = await signed_in(request, Scope.EXECUTION_LIST, "list executions")
    if isinstance(session, Response):
        return session
    svc, principal, csrf = session
    params = request.query_params
    status, q, cd = params.get("status", ""), params.get("q", ""), params.get("cd", "")
    api_params: dict[str, str] = {"limit": "50"}
    if status:
        api_params["status"] = status
    key, equals, value = cd.partition("=")
    if equals and key.strip():
        api_params[f"customData[{key.strip()}]"] = value.strip()
    if params.get("cursor"):
        api_params["cursor"] = params["cursor"]
    flash: str | None = None
    query = None
    try:
        query = execution_query(type(params)(api_params), principal.project_id)
        query = dataclasses.replace(query, workflow_prefix=q or None)
    except ApiError as exc:
        flash = exc.message
    if cd and not (equals and key.strip()):
        flash, query = CD_MALFORMED, None
    found = (
        []
        if query is None
        else await svc.store.list_executions(dataclasses.replace(query, limit=query.limit + 1))
    )
    next_cursor = None if query is None else page(found, query, lambda e: e.id)
    return render(
        "ui_list.html",
        400 if flash else 200,
        signed_in=True,
        now=svc.clock.now_ms(),
        csrf=csrf,
        nav_events=principal.allows(Scope.EVENT_READ),
        flash=flash,
        flash_bad=bool(flash),
        statuses=[s.value for s in Status],
        status=status,
        q=q,
        cd=cd,
        executions=[
            execution_view(e, svc.signer, signed_urls=principal.allows(SIGNED_URL_SCOPE))
            for e in found
        ],
        next_cursor=next_cursor,
        retention=retention_in_words(svc.settings),
        next_query=urlencode({"status": status, "q": q, "cd": cd, "cursor": next_cursor or ""}),
    )


async def detail(request: Request) -> Response:
    """``GET /ui/executions/{id}``: waits, resume attempts, deliveries, customData, buttons."""
    session = await signed_in(request, Scope.EXECUTION_READ, "read executions")
    if isinstance(session, Response):
        return session
    svc, principal, csrf = session
    eid: int = request.path_params["id"]
    try:
        execution = await load_execution(svc, principal, eid, with_waits=True)
    except ApiError as exc:
        return _refused(404, exc.message, csrf)
    deliveries, delivery_attempts = await svc.store.execution_deliveries(eid)
    attempts = await svc.store.resume_attempts(eid)
    decisions = await svc.store.execution_decisions(eid)
    may_read_events = principal.allows(Scope.EVENT_READ)
    events_of_waits = await svc.store.events_of_execution(eid) if may_read_events else {}
    usable = {
        "stop": execution.status in STOPPABLE,
        "retry": execution.status in RETRYABLE,
        "resume": execution.status is Status.WAITING,
    }
    actions = [
        (name, label, style)
        for name, (scope, label, style) in ACTIONS.items()
        if usable[name] and principal.allows(scope)
    ]
    return render(
        "ui_detail.html",
        signed_in=True,
        now=svc.clock.now_ms(),
        csrf=csrf,
        nav_events=may_read_events,
        events_of_waits=events_of_waits,
        flash=FLASHES.get(request.query_params.get("done", "")),
        e=execution_view(
            execution,
            svc.signer,
            signed_urls=principal.allows(SIGNED_URL_SCOPE),
            include_data=True,
        ),
        actions=actions,
        attempts=[attempt_view(a) for a in attempts],
        decisions=[(seq, decision_view(d, multiple=True)) for seq, d in decisions],
        deliveries=[delivery_view(d, delivery_attempts, execution.waits) for d in deliveries],
    )


async def act(request: Request) -> Response:
    """``POST /ui/executions/{id}/{stop|retry|resume}``, then back to the execution."""
    session = await _session(request)
    if session is None:
        return _to_login()
    svc, principal, _ = session
    eid: int = request.path_params["id"]
    action: str = request.path_params["action"]
    form = await _form(request)
    if action not in ACTIONS or not _csrf_ok(svc, form.get("csrf", ""), request):
        raise ApiError(403, "Forbidden")
    if not principal.allows(ACTIONS[action][0]):
        raise ApiError(403, "Forbidden")
    if action in CONFIRMED and not _sure_ok(svc, form.get("sure", ""), eid, action):
        sure = _serializer(svc, "sure").dumps([eid, action])
        return render(
            "ui_confirm.html",
            eid=eid,
            action=action,
            label=ACTIONS[action][1],
            csrf=form["csrf"],
            sure=sure,
            signed_in=True,
        )
    project = principal.project_id
    outcome: Execution | Retried | Unchanged
    if action == "stop":
        outcome = await executions.stop(svc, project, eid)
    elif action == "resume":
        outcome = await executions.resume_now(svc, project, eid, None, via="ui")
    else:
        outcome = await executions.retry(svc, project, eid)
    if isinstance(outcome, Unchanged) and outcome.execution is None:
        raise not_found(eid)
    target = outcome.execution.id if isinstance(outcome, Retried) else eid
    flash = f"{action}-{'done' if outcome else 'failed'}"
    return RedirectResponse(
        f"/ui/executions/{target}?{urlencode({'done': flash})}", status_code=303
    )


routes = [
    Route("/ui", listing, methods=["GET"]),
    Route("/ui/login", login, methods=["GET", "POST"]),
    Route("/ui/logout", logout, methods=["POST"]),
    Route("/ui/executions/{id:int}", detail, methods=["GET"]),
    Route("/ui/executions/{id:int}/{action}", act, methods=["POST"]),
]
