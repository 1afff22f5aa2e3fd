"""Approval pages: ``/approval/{id}?signature=…`` shows what is asked; Approve or Reject answers.

The page's URL is signed for the approval action of one wait, so it cannot be turned into the
wait's plain resume URL or another wait's page. The wait's caller checks (``allowedIps``,
Basic, ``ignoreBots``) apply as on its resume URL, and every answer is one conditional write
bound to the wait the page was signed for: a stale page acts on nothing.

Without approvers, whoever holds the link answers once: Approve resumes with ``{approved:
true}``; Reject resumes with ``{approved: false}`` or, if the wait says so, cancels the
execution. Once answered, the page says so instead of showing the buttons.

With approvers (``gateway.approvals``), each has a personal link
(``?approver=…&signature=…``, the token signed over the approver's id): the page shows who is
asked, who decided what, and what is still needed; the approver decides once. The link without
an approver shows the same and decides nothing; so does the requester's own link.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import executions
from gateway.approvals import (
    MAX_COMMENT,
    ApprovalSpec,
    Decision,
    NotAllowed,
    check_decision,
)
from gateway.domain import Execution, ResumedBy, Status, Unchanged, Wait, format_instant
from gateway.ended import ended_in_words
from gateway.errors import InvalidInput
from gateway.http import read_body
from gateway.pages import deadline, own_action, page, signed_wait
from gateway.relative import relative
from gateway.services import Services
from gateway.signed import audit_attempt, caller_refusal
from gateway.signing import Action


@dataclass(frozen=True)
class Target:
    """The wait a signed page names, and the approver whose link it is (``""``: none)."""

    svc: Services
    execution: Execution
    wait: Wait
    spec: ApprovalSpec
    approver: str


SURE = "sure"
"""The field of the "Are you sure?" step: a reject that cancels the workflow acts only with it."""
ENDED = "This request is no longer waiting for an answer."


def _page(status: int, title: str, state: str, message: str = "", **extra: Any) -> Response:
    return page("approval.html", status, title=title, state=state, message=message, **extra)


async def _target(request: Request) -> Target | Response:
    """The execution and wait the signed page URL names, or the page that says why not (also
    when the wait's caller checks refuse this caller: then nothing of the question is shown)."""
    who = request.query_params.get("approver", "")
    found = await signed_wait(request, Action.APPROVAL, who)
    if found is False:
        return _page(401, "Link not valid", "gone", "This link is not valid.")
    approval = None
    if isinstance(found, tuple):
        webhook = found[2].webhook
        approval = None if webhook is None else webhook.approval
    asked = () if approval is None else tuple(a.id for a in approval.approvers)
    if not isinstance(found, tuple) or approval is None or (who and who not in asked):
        return _page(404, "Nothing to approve", "gone", "There is nothing to approve here.")
    svc, execution, wait = found
    refused = caller_refusal(request, svc, wait)
    if refused is not None:
        shown = _page(refused.status, "Approval", "gone", refused.message)
        shown.headers.update(refused.headers)
        return shown
    return Target(svc, execution, wait, approval, who)


def _answered(execution: Execution, wait: Wait, title: str, **extra: Any) -> Response | None:
    """The page for an approval that cannot be answered any more."""
    decision = wait.payload.get("approved") if isinstance(wait.payload, dict) else None
    if wait.resumed_by in (ResumedBy.FORM, ResumedBy.APPROVAL) and isinstance(decision, bool):
        verdict = "approved" if decision else "rejected"
        return _page(409, title, "done", f"This request was already {verdict}.", **extra)
    if wait.resumed_at is not None or execution.status is not Status.WAITING:
        message = ended_in_words(execution, wait) or ENDED
        return _page(409, title, "done", message, **extra)
    if execution.wait_seq != wait.seq:
        return _page(409, title, "done", ENDED, **extra)
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


def _progress(spec: ApprovalSpec, decisions: tuple[Decision, ...], now: int) -> dict[str, Any]:
    """Who is asked, who decided what (and how long ago, at ``now``), and how many approvals
    are still needed."""
    by_id = {d.approver: d for d in decisions}
    rows = []
    for approver in spec.approvers:
        decided = by_id.get(approver.id)
        state = "requester" if approver.id == spec.requester else "waiting"
        if decided is not None:
            state = "approved" if decided.decision == "approve" else "rejected"
        rows.append(
            {
                "name": approver.name or approver.id,
                "state": state,
                "options": ", ".join(decided.options) if decided and spec.multiple else "",
                "option": decided.options[0] if decided and decided.options else "",
                "comment": decided.comment if decided else "",
                "at": format_instant(decided.at) if decided else "",
                "ago": relative(decided.at, now) if decided else "",
            }
        )
    approvals = sum(d.decision == "approve" for d in decisions)
    return {"asked": rows, "needed": max(0, spec.required - approvals), "required": spec.required}


async def _shown(target: Target) -> dict[str, Any]:
    """What every page of an approval with approvers shows besides its message."""
    decisions = await target.svc.store.wait_decisions(target.execution.id, target.wait.seq)
    return {
        "progress": _progress(target.spec, decisions, target.svc.clock.now_ms()),
        "decisions": decisions,
    }


async def show(request: Request) -> Response:
    """``GET /approval/{id}``: the question, with Approve and Reject."""
    found = await _target(request)
    if isinstance(found, Response):
        return found
    execution, wait, spec = found.execution, found.wait, found.spec
    if not spec.approvers:
        closed = _answered(execution, wait, spec.title)
        if closed is not None:
            return closed
        return _page(
            200,
            spec.title,
            "ask",
            description=spec.description,
            action=own_action(request),
            **deadline(found.svc, wait),
        )
    shown = await _shown(found)
    progress, decisions = shown["progress"], shown["decisions"]
    closed = _answered(execution, wait, spec.title, progress=progress)
    if closed is not None:
        return closed
    extra = {"description": spec.description, "progress": progress}
    if not found.approver:
        return _page(200, spec.title, "view", "", **extra)
    if found.approver == spec.requester:
        message = "You requested this approval, so you cannot decide it."
        return _page(200, spec.title, "view", message, **extra)
    if any(d.approver == found.approver for d in decisions):
        return _page(409, spec.title, "view", "You have already decided.", **extra)
    extra |= deadline(found.svc, wait)
    return _page(200, spec.title, "ask", action=own_action(request), spec=spec, **extra)


async def answer(request: Request) -> Response:
    """``POST /approval/{id}``: Approve or Reject, exactly once (once per approver)."""
    found = await _target(request)
    if isinstance(found, Response):
        return found
    spec = found.spec
    form = parse_qs((await read_body(request, 64 * 1024)).decode("utf-8", "replace"))
    decision = form.get("decision", [""])[0]
    comment = form.get("comment", [""])[0][:MAX_COMMENT]
    if decision == "reject" and spec.on_reject == "cancel" and form.get(SURE) != ["yes"]:
        closed = _answered(found.execution, found.wait, spec.title)
        if closed is not None:
            return closed
        return _page(
            200, spec.title, "sure", action=own_action(request), comment=comment, form=form
        )
    if not spec.approvers:
        return await _answer_once(request, found, decision, comment)
    if not found.approver:
        message = "This link shows the request; decide through your own link."
        return _page(403, spec.title, "done", message)
    try:
        verdict, options = check_decision(
            spec, found.approver, decision, tuple(form.get("option", [])), comment
        )
    except NotAllowed:
        return _page(403, spec.title, "done", "You requested this approval; you cannot decide it.")
    except InvalidInput as exc:
        return _page(400, spec.title, "done", str(exc))
    mine = Decision(found.approver, verdict, options, comment, via="page")
    return await _decided(request, found, mine)


async def _answer_once(request: Request, found: Target, decision: str, comment: str) -> Response:
    """The answer of an approval without approvers: the first one decides."""
    title = found.spec.title
    if decision not in {"approve", "reject"}:
        return _page(400, title, "done", "Choose Approve or Reject.")
    approved = decision == "approve"
    outcome = await executions.answer_approval(
        found.svc,
        found.execution.id,
        found.wait.seq,
        found.spec,
        approved=approved,
        comment=comment,
        user_agent=request.headers.get("user-agent"),
    )
    if isinstance(outcome, Unchanged):
        return _refused(outcome, found.wait.seq, title)
    message = "Approved. Thank you." if approved else "Rejected. Thank you."
    return _page(200, title, "done", message)


async def _decided(request: Request, found: Target, mine: Decision) -> Response:
    """Record an approver's decision and say what it did."""
    eid, seq, title = found.execution.id, found.wait.seq, found.spec.title
    outcome = await executions.decide(found.svc, eid, seq, found.spec, mine)
    if isinstance(outcome, Unchanged):
        return _refused(outcome, seq, title)
    progress = _progress(found.spec, outcome.decisions, found.svc.clock.now_ms())
    if outcome.duplicate:
        return _page(409, title, "done", "You have already decided.", progress=progress)
    reason = f"approver {mine.approver} decided {mine.decision}"
    audit_attempt(found.svc, request, eid, seq, 200, reason, "accepted")
    messages = {
        "approved": "Approved. Thank you.",
        "rejected": "Rejected. Thank you.",
        None: "Your decision is recorded. Thank you.",
    }
    return _page(200, title, "done", messages[outcome.ended], progress=progress)


routes = [
    Route("/approval/{id}", show, methods=["GET"]),
    Route("/approval/{id}", answer, methods=["POST"]),
]
