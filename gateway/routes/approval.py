"""Approval pages: ``/approval/{id}?signature=…`` shows what is asked; Approve or Reject answers.

The page's URL is signed for the approval action of one wait, so it cannot be turned into the
wait's plain resume URL or another wait's page. Approve resumes with ``{approved: true}``;
Reject resumes with ``{approved: false}`` or, if the wait says so, cancels the execution. Once
answered, the page says so instead of showing the buttons. The wait's caller checks
(``allowedIps``, Basic, ``ignoreBots``) apply as on its resume URL, and every answer is one
conditional write bound to the wait the page was signed for: a stale page acts on nothing.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import executions
from gateway.domain import ApprovalSpec, Execution, Status, Unchanged, Wait
from gateway.http import read_body
from gateway.pages import own_action, page, signed_wait
from gateway.services import Services
from gateway.signed import caller_refusal
from gateway.signing import Action

MAX_COMMENT = 1000
Target = tuple[Services, Execution, Wait, ApprovalSpec]


def _page(status: int, title: str, state: str, message: str = "", **extra: Any) -> Response:
    return page("approval.html", status, title=title, state=state, message=message, **extra)


async def _target(request: Request) -> Target | Response:
    """The execution and wait the signed page URL names, or the page that says why not (also
    when the wait's caller checks refuse this caller: then nothing of the question is shown)."""
    found = await signed_wait(request, Action.APPROVAL)
    if found is False:
        return _page(401, "Link not valid", "gone", "This link is not valid.")
    approval = None
    if isinstance(found, tuple):
        webhook = found[2].webhook
        approval = None if webhook is None else webhook.approval
    if not isinstance(found, tuple) or approval is None:
        return _page(404, "Nothing to approve", "gone", "There is nothing to approve here.")
    svc, execution, wait = found
    refused = caller_refusal(request, svc, wait)
    if refused is not None:
        shown = _page(refused.status, "Approval", "gone", refused.message)
        shown.headers.update(refused.headers)
        return shown
    return svc, execution, wait, approval


def _answered(execution: Execution, wait: Wait, title: str) -> Response | None:
    """The page for an approval that cannot be answered any more."""
    if wait.resumed_at is not None:
        decided = isinstance(wait.payload, dict) and wait.payload.get("approved")
        verdict = "approved" if decided else "answered"
        return _page(409, title, "done", f"This request was already {verdict}.")
    if execution.status is not Status.WAITING or execution.wait_seq != wait.seq:
        return _page(409, title, "done", "This request is no longer waiting for an answer.")
    return None


def _refused(outcome: Unchanged, seq: int, title: str) -> Response:
    """The page for an answer that came too late, saying what the state that refused it was."""
    latest = outcome.execution
    latest_wait = None if latest is None else next((w for w in latest.waits if w.seq == seq), None)
    if latest is not None and latest_wait is not None:
        closed = _answered(latest, latest_wait, title)
        if closed is not None:
            return closed
    return _page(409, title, "done", "This request is no longer waiting.")


async def show(request: Request) -> Response:
    """``GET /approval/{id}``: the question, with Approve and Reject."""
    found = await _target(request)
    if isinstance(found, Response):
        return found
    _, execution, wait, approval = found
    closed = _answered(execution, wait, approval.title)
    if closed is not None:
        return closed
    return _page(
        200, approval.title, "ask", description=approval.description, action=own_action(request)
    )


async def answer(request: Request) -> Response:
    """``POST /approval/{id}``: Approve or Reject, exactly once."""
    found = await _target(request)
    if isinstance(found, Response):
        return found
    svc, execution, wait, approval = found
    form = parse_qs((await read_body(request, 64 * 1024)).decode("utf-8", "replace"))
    decision = form.get("decision", [""])[0]
    if decision not in {"approve", "reject"}:
        return _page(400, approval.title, "done", "Choose Approve or Reject.")
    approved = decision == "approve"
    outcome = await executions.answer_approval(
        svc,
        execution.id,
        wait.seq,
        approval,
        approved=approved,
        comment=form.get("comment", [""])[0][:MAX_COMMENT],
        user_agent=request.headers.get("user-agent"),
    )
    if isinstance(outcome, Unchanged):
        return _refused(outcome, wait.seq, approval.title)
    message = "Approved. Thank you." if approved else "Rejected. Thank you."
    return _page(200, approval.title, "done", message)


routes = [
    Route("/approval/{id}", show, methods=["GET"]),
    Route("/approval/{id}", answer, methods=["POST"]),
]
