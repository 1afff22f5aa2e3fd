"""Decisions of approvers: each recorded in the transaction that, when it meets the approval's
rule, also resumes the wait (or cancels the execution) with the same conditional write as every
other way a wait ends.

A decision first takes the execution while it waits at the wait (PostgreSQL: ``FOR UPDATE``;
SQLite: the single writer), so concurrent decisions on one wait are judged one after another and
exactly one of them meets the rule; a resume by URL, the timer or an operator that came first
leaves nothing to lock (``Unchanged``).
"""

from __future__ import annotations

from gateway.approvals import ApprovalSpec, Decided, Decision, InboxItem, ended, payload
from gateway.domain import ResumedBy, Unchanged
from persistence import rows
from persistence import script as q
from persistence.executions import get_execution, stop, unchanged
from persistence.script import Script
from persistence.waits import get_wait, resume_wait, wait_decisions


def execution_decisions(execution_id: int) -> Script[list[tuple[int, Decision]]]:
    """Every decision on the execution's waits, by wait."""
    found = yield from q.rows("execution_decisions", {"id": execution_id})
    return [(r["seq"], rows.decision_from_row(r)) for r in found]


def approver_inbox(project: str | None, approver: str, limit: int) -> Script[list[InboxItem]]:
    """The open approval waits of ``project`` (``None``: executions without one) that ask
    ``approver`` (not as their requester) and that they have not decided, oldest first."""
    params = {"project": project, "approver": approver, "limit": limit}
    found = yield from q.rows("approver_inbox", params)
    items = []
    for r in found:
        webhook = rows.load_webhook(r["webhook"])
        assert webhook is not None
        assert webhook.approval is not None
        title, nonce = webhook.approval.title, r["nonce"] or ""
        items.append(
            InboxItem(r["id"], nonce, r["seq"], title, r["parked_at"], r["wait_till"], webhook)
        )
    return items


def decide(
    execution_id: int, seq: int, spec: ApprovalSpec, decision: Decision
) -> Script[Decided | Unchanged]:
    """Record ``decision`` on wait ``seq`` (its ``at`` is now) and, if it meets the rule of
    ``spec`` (the wait's approval), resume the wait with the approval payload, or for a
    rejection that cancels, stop the execution. ``Unchanged`` if the execution is not waiting
    at that wait; ``Decided`` with ``duplicate`` if this approver had decided it already."""
    if (yield from q.row("lock_waiting", {"id": execution_id, "seq": seq})) is None:
        return (yield from unchanged(execution_id))
    wait = yield from get_wait(execution_id, seq)  # an escalation may have added approvers
    if wait is not None and wait.webhook is not None and wait.webhook.approval is not None:
        spec = wait.webhook.approval
    params = rows.decision_params(execution_id, seq, decision)
    recorded = (yield from q.count("insert_decision", params)) == 1
    decisions = yield from wait_decisions(execution_id, seq)
    verdict = ended(spec, decisions) if recorded else None
    if verdict == "rejected" and spec.on_reject == "cancel":
        yield from stop(execution_id, decision.at, wait_seq=seq)
    elif verdict is not None:
        body = payload(
            spec, decisions, verdict == "approved", timed_out=False, by=ResumedBy.APPROVAL
        )
        yield from resume_wait(execution_id, seq, ResumedBy.APPROVAL, body, decision.at)
    execution = yield from get_execution(execution_id, with_waits=True)
    assert execution is not None
    return Decided(execution, seq, spec, decisions, verdict, duplicate=not recorded)
