"""The use cases of executions: each transition an entry point asks for, written once.

The engine API, the public API, the dashboard and the approval and form pages all call these
(a call of a resume URL is ``gateway.calls``). Each does the store's conditional write, counts
it, logs it under a stable ``action`` name, answers a caller held by the wait it concerns, and
returns a typed outcome: the row after the write, or ``Unchanged`` with the row that refused it
(read in the refusing transaction; ``None`` when there is no such execution, or the caller's
project may not see it). The routes turn an outcome into their answer and their wording.

``project`` is the caller's project (``None``: every project). An execution of another project
is reported as missing, and is read first so that nothing is written to it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import Counter

from gateway import logs, metrics, tracing
from gateway.answers import explicit_answer, finished_answer, json_answer
from gateway.approvals import ApprovalSpec, Decided, Decision, Via, check_decision
from gateway.caller_auth import kept_checker
from gateway.domain import (
    JSON,
    Ending,
    Execution,
    NewExecution,
    ResponseMode,
    ResumedBy,
    Retried,
    Status,
    StopFilter,
    StoredAnswer,
    Unchanged,
    WebhookSpec,
    format_instant,
)
from gateway.early import ParkOutcome, refused_early_attempt
from gateway.event_model import EventCondition
from gateway.form_schema import Refused, refusal
from gateway.services import Services
from gateway.stored import MAX_HEADER_VALUE, clip_optional
from gateway.trace_context import TraceContext
from gateway.views import next_wait_view

log = logging.getLogger("waitgate.executions")
GONE = Unchanged(None)


@dataclass(frozen=True)
class Responded:
    """An explicit answer for the caller held by wait ``seq``: kept, or not because that
    caller was answered already."""

    seq: int
    answer: StoredAnswer
    kept: bool


_RESUMES: dict[ResumedBy, Counter] = {}
"""The resume counter of each way, once used (looking a label up costs more than counting)."""


def resumed(eid: int, seq: int, by: ResumedBy, *, held: bool = False) -> None:
    """Count and log one resumed wait. Every resume an entry point makes (the API, the
    dashboard, a page, a call of its URL, an event, a call or event kept for it and applied at
    park) passes here once; the timer counts its own (``wait.timeout``). The line is the
    request's (``logs.request_line``) unless the request then holds its caller (``held``) for
    an answer that may come much later: then the resume has its line when it happens."""
    counter = _RESUMES.get(by)
    if counter is None:
        counter = _RESUMES[by] = metrics.RESUMES.labels(by.value)
    counter.inc()
    fields = {"action": "wait.resumed", "execution_id": eid, "seq": seq, "by": by.value}
    if held or not logs.into_request_line(fields):
        logs.info(log, f"resumed by {by.value}", fields)


async def visible(
    svc: Services, project: str | None, eid: int, *, with_waits: bool = False
) -> Execution | None:
    """The execution, if it exists and ``project`` may see it."""
    execution = await svc.store.get_execution(eid, with_waits=with_waits)
    if execution is None or (project is not None and execution.project_id != project):
        return None
    return execution


async def _hidden(svc: Services, project: str | None, eid: int) -> bool:
    """Whether a project-bound caller may not see the execution (read before any write)."""
    return project is not None and await visible(svc, project, eid) is None


async def _answer_held(
    svc: Services, execution: Execution, seq: int, answer: Callable[[], StoredAnswer]
) -> None:
    """Keep ``answer()`` for a caller held by wait ``seq``, if that wait holds its caller."""
    wait = next((w for w in execution.waits if w.seq == seq), None)
    if wait is None or wait.webhook is None or not wait.webhook.holds_caller:
        return
    await svc.store.put_held_answer(execution.id, seq, answer(), svc.clock.now_ms())


@tracing.traced("waitgate.create")
async def create(svc: Services, new: NewExecution, trace: TraceContext | None = None) -> Execution:
    """A new ``running`` execution, keeping the ``trace`` context its creator gave."""
    kept = tracing.kept(trace, always=True)
    execution = await svc.store.create_execution(new, svc.clock.now_ms(), kept)
    tracing.annotate(execution.id)
    logs.info(log, "created", {"action": "execution.created", "execution_id": execution.id})
    return execution


@tracing.traced("waitgate.park")
async def park(
    svc: Services,
    project: str | None,
    eid: int,
    wait_till: int | None,
    webhook: WebhookSpec | None,
    events: tuple[EventCondition, ...] = (),
    trace: TraceContext | None = None,
) -> ParkOutcome | Unchanged:
    """Park a running execution at a new wait, which may also end on ``events``; a call kept
    for it is judged and applied, or else an event kept for it within its lookback. The wait
    keeps the ``trace`` context the request gave, for what ends it to continue.

    A caller still held by the previous wait (lastNode / responseNode) is answered with the
    new wait: its status, deadline and resume URL.
    """
    if await _hidden(svc, project, eid):
        return GONE
    now, started = svc.clock.now_ms(), tracing.started()
    outcome = await svc.store.park(
        eid,
        wait_till,
        webhook,
        now,
        admit_early=kept_checker,
        events=events,
        trace=tracing.kept(trace),
    )
    if isinstance(outcome, Unchanged):
        return outcome
    return await _parked(svc, outcome, wait_till, now, started)


@tracing.traced("waitgate.create")
async def create_parked(
    svc: Services,
    new: NewExecution,
    wait_till: int | None,
    webhook: WebhookSpec | None,
    events: tuple[EventCondition, ...] = (),
    trace: TraceContext | None = None,
) -> ParkOutcome:
    """A new execution parked at its first wait in one write, as ``create`` then ``park``
    would leave it; if the park refuses, nothing is written."""
    now, started = svc.clock.now_ms(), tracing.started()
    outcome = await svc.store.create_parked(
        new,
        wait_till,
        webhook,
        now,
        events=events,
        trace=tracing.kept(trace, always=True),
        wait_trace=tracing.kept(trace),
    )
    eid = outcome.execution.id
    logs.info(log, "created", {"action": "execution.created", "execution_id": eid})
    return await _parked(svc, outcome, wait_till, now, started)


async def _parked(
    svc: Services, outcome: ParkOutcome, wait_till: int | None, now: int, started: int
) -> ParkOutcome:
    """What follows a park's commit: the held caller of the previous wait answered, a wait
    resumed in the same write announced, refused early calls audited, the park logged."""
    metrics.PARKS.inc()
    execution = outcome.execution
    eid = execution.id
    seq = max(w.seq for w in execution.waits)
    tracing.annotate(eid, seq)
    await _answer_held(
        svc,
        execution,
        seq - 1,
        lambda: json_answer(200, next_wait_view(execution, svc.signer), "parked"),
    )
    if outcome.early_resume_applied:
        resumed(eid, seq, ResumedBy.WEBHOOK)
        await tracing.resumed(svc.store, [(eid, seq)], ResumedBy.WEBHOOK, started)
    if outcome.kept_event is not None:
        resumed(eid, seq, ResumedBy.EVENT)
        await tracing.resumed(svc.store, [(eid, seq)], ResumedBy.EVENT, started)
    for early, why in outcome.refused_early:
        svc.audit.record(refused_early_attempt(eid, seq, early, why, now))
    if outcome.refused_early:
        log.info(
            "early resume refused",
            extra={"action": "wait.early_refused", "execution_id": eid, "seq": seq},
        )
    logs.info(
        log,
        "parked",
        {
            "action": "execution.parked",
            "execution_id": eid,
            "early_resume_applied": outcome.early_resume_applied,
            "kept_event": outcome.kept_event,
        },
    )
    warnings = park_warnings(wait_till, now)
    return dataclasses.replace(outcome, warnings=warnings) if warnings else outcome


def park_warnings(wait_till: int | None, now: int) -> tuple[str, ...]:
    """A ``waitTill`` before ``now`` is accepted, as n8n does, and said so."""
    if wait_till is None or wait_till > now:
        return ()
    return (f"waitTill {format_instant(wait_till)} is in the past; the wait resumes at once",)


async def finish(
    svc: Services, project: str | None, eid: int, status: Ending, result: JSON, error: JSON
) -> Execution | Unchanged:
    """A running execution ends in success or error; the execution after, with its waits.

    A caller held by the last wait gets the result (``responseData`` of a lastNode wait:
    firstEntryJson, allEntries or noData), or 500 ``Error in workflow``.
    """
    if await _hidden(svc, project, eid):
        return GONE
    finished = await svc.store.finish(eid, Status(status), result, error, svc.clock.now_ms())
    if isinstance(finished, Unchanged):
        return finished
    last = finished.waits[-1] if finished.waits else None
    if last is not None and last.webhook is not None:
        choice = last.webhook.response_data if isinstance(last.webhook.response_data, str) else ""
        answer = finished_answer(status, result, choice or "firstEntryJson")
        await _answer_held(svc, finished, last.seq, lambda: answer)
    log.info("finished", extra={"action": "execution.finished", "execution_id": eid})
    return finished


async def respond(
    svc: Services,
    project: str | None,
    eid: int,
    status_code: int,
    headers: dict[str, str],
    body: Any,
) -> Responded | Unchanged:
    """Answer the caller held by the last resumed wait, if it is a responseNode wait
    (``Unchanged`` with the execution when it has no such wait)."""
    execution = await visible(svc, project, eid, with_waits=True)
    if execution is None:
        return GONE
    resumed = [w for w in execution.waits if w.resumed_at is not None]
    last = resumed[-1] if resumed else None
    spec = None if last is None else last.webhook
    if last is None or spec is None or spec.response_mode is not ResponseMode.RESPONSE_NODE:
        return Unchanged(execution)
    answer = explicit_answer(status_code, headers, body)
    kept = await svc.store.put_held_answer(eid, last.seq, answer, svc.clock.now_ms())
    return Responded(last.seq, answer, kept)


async def resume(
    svc: Services, eid: int, seq: int, by: ResumedBy, payload: JSON
) -> Execution | Unchanged:
    """End wait ``seq`` now (not by a call of its URL: see ``gateway.calls``); the execution
    after, with its waits. Counted by what resumed it."""
    started = tracing.started()
    outcome = await svc.store.resume(eid, seq, by, payload, svc.clock.now_ms())
    if outcome:
        resumed(eid, seq, by)
        await tracing.resumed(svc.store, [(eid, seq)], by, started)
    return outcome


async def resume_now(
    svc: Services, project: str | None, eid: int, body: JSON, *, via: Literal["ui"] | None = None
) -> Execution | Unchanged:
    """End the current wait of a waiting execution (``resumedBy: api``, from the API or, with
    ``via``, the dashboard)."""
    execution = await _waiting(svc, project, eid)
    if isinstance(execution, Unchanged):
        return execution
    payload: dict[str, Any] = {"body": body, "resumedBy": ResumedBy.API.value}
    if via is not None:
        payload["via"] = via
    return await resume(svc, eid, execution.wait_seq, ResumedBy.API, payload)


async def resume_with_data(
    svc: Services, project: str | None, eid: int, data: JSON
) -> Execution | Unchanged | Refused:
    """End the current wait from the API with ``data``; at a form wait with a schema, ``data``
    is the form's data: the wait ends only if the schema accepts it (``Refused`` otherwise),
    with ``formData`` as a submission of the form would."""
    execution = await _waiting(svc, project, eid)
    if isinstance(execution, Unchanged):
        return execution
    wait = await svc.store.get_wait(eid, execution.wait_seq)
    form = None if wait is None or wait.webhook is None else wait.webhook.form
    payload = {"body": data, "resumedBy": ResumedBy.API.value}
    if form is not None and form.schema is not None:
        refused = refusal(form.schema, data)
        if refused is not None:
            return refused
        payload = {"formData": data, "resumedBy": ResumedBy.API.value}
    return await resume(svc, eid, execution.wait_seq, ResumedBy.API, payload)


async def _waiting(svc: Services, project: str | None, eid: int) -> Execution | Unchanged:
    """The execution if it waits (and ``project`` may see it)."""
    execution = await visible(svc, project, eid)
    if execution is None:
        return GONE
    return execution if execution.status is Status.WAITING else Unchanged(execution)


async def answer_approval(
    svc: Services,
    eid: int,
    seq: int,
    approval: ApprovalSpec,
    *,
    approved: bool,
    comment: str,
    user_agent: str | None,
) -> Execution | Unchanged:
    """Approve or reject wait ``seq`` from its page: resume it with the decision, or, for a
    rejection of a wait that says so, cancel the execution (only while it waits there)."""
    if not approved and approval.on_reject == "cancel":
        outcome = await stop(svc, None, eid, wait_seq=seq)
    else:
        payload = {
            "approved": approved,
            "comment": comment,
            "userAgent": clip_optional(user_agent, MAX_HEADER_VALUE),
            "resumedBy": ResumedBy.FORM.value,
        }
        outcome = await resume(svc, eid, seq, ResumedBy.FORM, payload)
    if outcome:
        log.info(
            "approval answered",
            extra={"action": "approval.answered", "execution_id": eid, "approved": approved},
        )
    return outcome


async def decide(
    svc: Services, eid: int, seq: int, approval: ApprovalSpec, decision: Decision
) -> Decided | Unchanged:
    """Record an approver's decision on wait ``seq`` (checked against ``approval`` by the
    caller, see ``gateway.approvals.check_decision``); when it meets the approval's rule the
    wait is resumed, or the execution canceled, in the same transaction."""
    decision = dataclasses.replace(decision, at=svc.clock.now_ms())
    started = tracing.started()
    outcome = await svc.store.decide(eid, seq, approval, decision)
    if isinstance(outcome, Unchanged) or outcome.duplicate:
        return outcome
    canceled = outcome.ended == "rejected" and approval.on_reject == "cancel"
    if outcome.ended is not None and not canceled:
        resumed(eid, seq, ResumedBy.APPROVAL)
        await tracing.resumed(svc.store, [(eid, seq)], ResumedBy.APPROVAL, started)
    log.info(
        "approval decided",
        extra={
            "action": "approval.decided",
            "execution_id": eid,
            "seq": seq,
            "approver": decision.approver,
            "decision": decision.decision,
            "via": decision.via,
            "ended": outcome.ended,
        },
    )
    if canceled:
        log.info("stopped", extra={"action": "execution.stopped", "execution_id": eid})
    return outcome


async def decide_current(
    svc: Services,
    project: str | None,
    eid: int,
    approver: str,
    decision: str,
    options: tuple[str, ...],
    comment: str,
    via: Via,
) -> Decided | Unchanged:
    """Record a decision made elsewhere (``via``) on the execution's current wait, if it is
    an approval with approvers; ``Unchanged`` with the execution if it is not. Raises
    ``InvalidInput`` naming the rule the decision breaks (``NotAllowed`` for the requester)."""
    execution = await visible(svc, project, eid, with_waits=True)
    if execution is None:
        return GONE
    wait = execution.current_wait
    spec = None if wait is None or wait.webhook is None else wait.webhook.approval
    if wait is None or spec is None or not spec.approvers:
        return Unchanged(execution)
    verdict, chosen = check_decision(spec, approver, decision, options, comment)
    made = Decision(approver, verdict, chosen, comment, via=via)
    return await decide(svc, eid, wait.seq, spec, made)


async def submit_form(
    svc: Services, eid: int, seq: int, values: dict[str, Any]
) -> Execution | Unchanged:
    """Resume form wait ``seq`` with the submitted values."""
    payload = {"formData": values, "resumedBy": ResumedBy.FORM.value}
    return await resume(svc, eid, seq, ResumedBy.FORM, payload)


async def stop(
    svc: Services, project: str | None, eid: int, *, wait_seq: int | None = None
) -> Execution | Unchanged:
    """Cancel a new, unknown, running or waiting execution (with ``wait_seq``: only while it
    waits at that wait)."""
    if await _hidden(svc, project, eid):
        return GONE
    stopped = await svc.store.stop(eid, svc.clock.now_ms(), wait_seq=wait_seq)
    if stopped:
        log.info("stopped", extra={"action": "execution.stopped", "execution_id": eid})
    return stopped


async def stop_many(svc: Services, which: StopFilter) -> int:
    """Cancel every execution ``which`` matches; how many."""
    stopped = await svc.store.stop_many(which, svc.clock.now_ms())
    log.info("stopped many", extra={"action": "execution.stopped_many", "count": stopped})
    return stopped


async def retry(svc: Services, project: str | None, eid: int) -> Retried | Unchanged:
    """The retry of a failed, crashed or canceled execution: an earlier retry that is under
    way or succeeded, else a new one."""
    if await _hidden(svc, project, eid):
        return GONE
    retried = await svc.store.retry_execution(eid, svc.clock.now_ms())
    if isinstance(retried, Unchanged):
        return retried
    action = "execution.retried" if retried.created else "execution.retry_found"
    log.info(
        "retried" if retried.created else "retried already",
        extra={"action": action, "execution_id": retried.execution.id, "retry_of": eid},
    )
    return retried


async def delete(svc: Services, project: str | None, eid: int) -> Execution | Unchanged:
    """Delete an execution that is not running, with everything that belongs to it; the
    execution as it was."""
    if await _hidden(svc, project, eid):
        return GONE
    deleted = await svc.store.delete_execution(eid)
    if deleted:
        log.info("deleted", extra={"action": "execution.deleted", "execution_id": eid})
    return deleted
