"""An approver's inbox: ``/inbox?approver=…[&project=…]&signature=…`` lists every request
waiting on that approver, oldest first, each with its deadline and the approver's own page.

The link is signed (``Action.INBOX``) over the project and the approver's id, with the
deployment's keys; it is bound to no execution, so one link serves every request the approver
is asked in that project, the ones to come included. It has no expiry: it stops working when
the key that signed it is no longer configured (rotating the keys revokes every inbox link).
That is the trade-off of a link people keep: whoever holds it reaches that approver's personal
pages of the project (each still signed for its own wait), as long as the key lives.

A bad signature is answered 401 (as every signed page's), counted against the caller's address
and the inbox on the failed-signature budget, and logged (``inbox.bad_signature``): there is
no execution whose audit trail it could join. A request whose caller checks (``allowedIps``,
Basic, ``ignoreBots``) refuse this caller is not listed, as its page would show nothing.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.approvals import APPROVER_ID
from gateway.caller_auth import checker
from gateway.http import ApiError, client_address
from gateway.pages import page
from gateway.relative import absolute, relative
from gateway.services import services
from gateway.signed import check_inbox

MAX_LISTED = 200
MAX_PROJECT = 200


def _one(request: Request, name: str) -> str | None:
    """The query parameter ``name`` given once, ``None`` if absent; a 400 ``ValueError`` text
    if it is given more than once."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise ValueError(f"{name} is given more than once")
    return values[0] if values else None


def _refused(status: int, message: str) -> Response:
    return page("inbox.html", status, title="Inbox", message=message, items=None)


async def show(request: Request) -> Response:
    """``GET /inbox``: the requests waiting on the approver the signed link names."""
    svc = services(request)
    try:
        approver, project = _one(request, "approver"), _one(request, "project")
        _one(request, "signature")
    except ValueError as exc:
        return _refused(400, f"This link is not valid: {exc}.")
    if approver is None or not APPROVER_ID.fullmatch(approver):
        return _refused(400, "This link is not valid: approver is missing or malformed.")
    if project is not None and not 0 < len(project) <= MAX_PROJECT:
        return _refused(400, "This link is not valid: project is malformed.")
    try:
        check_inbox(svc, request, project, approver)
    except ApiError as exc:
        if exc.status == 401:
            return _refused(401, "This link is not valid.")
        raise
    now = svc.clock.now_ms()
    found = await svc.store.approver_inbox(project, approver, MAX_LISTED)
    admits = checker(request.headers, b"", client_address(request), now / 1000)
    items = [
        {
            "title": item.title,
            "url": svc.signer.approval_url(item.execution_id, item.nonce, item.seq, approver),
            "waiting": relative(item.parked_at, now),
            "parked_at": absolute(item.parked_at),
            "deadline": relative(item.wait_till, now),
            "deadline_at": absolute(item.wait_till),
            "overdue": item.wait_till is not None and item.wait_till <= now,
        }
        for item in found
        if admits(item.webhook) is None
    ]
    return page("inbox.html", title="Your requests", items=items, full=len(found) == MAX_LISTED)


routes = [Route("/inbox", show, methods=["GET"])]
