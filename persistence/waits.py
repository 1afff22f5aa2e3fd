"""Waits: park, resume (by a call, the API, or the timer), and calls kept before their park.

Each park creates a new wait; a resume is one conditional write on the execution's current
wait (``status = 'waiting' AND wait_seq = ?``), so whoever loses a race changes nothing and
gets the state that refused it (``Unchanged``), read in the same transaction.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from gateway.approvals import TIMEOUT_VERDICTS, Decision, OnTimeout
from gateway.approvals import payload as approval_payload
from gateway.domain import (
    JSON,
    Admission,
    CallOutcome,
    Execution,
    NewExecution,
    ResumedBy,
    Status,
    TimedOut,
    Unchanged,
    Wait,
    WebhookSpec,
    webhook_accepts,
)
from gateway.early import (
    MAX_KEPT,
    CallEvidence,
    EarlyAdmission,
    ParkOutcome,
    choose_early,
)
from gateway.errors import StoreError
from gateway.event_model import EventCondition
from gateway.outbox_model import Event
from gateway.trace_context import TraceContext
from persistence import event_rows, event_waits, rows, timers, traces
from persistence import script as q
from persistence.channels import check_channels, notify
from persistence.executions import get_execution, insert_execution, unchanged
from persistence.outbox import emit, resumed_delivery
from persistence.script import Script, Wake, WakeKind


class Registered(NamedTuple):
    """What a wait may have registered besides its own row, which whatever ends it deletes in
    its transaction: event conditions (``wait_events``), approval timers (``wait_timers``).

    Only a park registers them (``event_waits.watch``, ``timers.schedule``), for its own wait,
    and every way a wait ends deletes the execution's; so when the wait being ended has none,
    the execution has none, and the deletes can be skipped.
    """

    events: bool = True
    timers: bool = True


UNKNOWN = Registered()
"""For a caller that has not read the wait: delete both."""


def registered(wait: Wait) -> Registered:
    """What ``wait`` (as read in the ending transaction) may have registered: conditions if it
    has events (``waits.events`` is written with them), timers if its approval has reminders
    or an escalation not fired yet (an escalation that fires drops itself from the wait's
    approval, in the transaction that deletes its timer; nothing adds a timer after the park).
    """
    approval = None if wait.webhook is None else wait.webhook.approval
    timed = approval is not None and bool(approval.reminders or approval.escalation)
    return Registered(events=bool(wait.events), timers=timed)


def _resume(
    execution_id: int,
    seq: int,
    resumed_by: ResumedBy,
    payload: str | None,
    now: int,
    leftovers: Registered = UNKNOWN,
    delivery: q.Params | None = None,
    *,
    seen_callback: bool = False,
) -> Script[bool]:
    """The conditional resume plus its wait record and its outbox row, dropping what the wait
    registered (``leftovers``: what it may have); ``False`` if the wait was not the waiting
    one. ``delivery``: the outbox row, made from what the transaction read already (for an
    execution with a callback URL whose row cannot have changed since). ``seen_callback``:
    the transaction read the execution's callback URL already and ``delivery`` says all of
    it, so the resume need not read it back."""
    key = {"id": execution_id, "seq": seq}
    callback_url = None
    if seen_callback:
        if not (yield from q.count("resume_seen", key)):
            return False
    else:
        resumed = yield from q.row("resume", key)
        if resumed is None:
            return False
        callback_url = resumed["callback_url"]
    marked = {**key, "now": now, "resumed_by": resumed_by.value, "payload": payload}
    yield from q.count("mark_wait_resumed", marked)
    if leftovers.events:
        yield from event_waits.clear(execution_id)
    if leftovers.timers:
        yield from timers.clear([execution_id])
    if delivery is not None:
        yield from q.count("insert_delivery", delivery)
        yield q.OUTBOX
    elif callback_url is not None:
        yield from emit(execution_id, Event.RESUMED, now, seq)
    return True


def _resume_call(
    seen: q.Row, payload: str | None, now: int, leftovers: Registered, delivery: q.Params | None
) -> Script[bool]:
    """``_resume`` by a call, as PostgreSQL's one statement ``resume_call`` run alone (no
    transaction: two round trips for the whole call with its read); ``False`` if it wrote
    nothing: the wait was not the waiting one, or the execution's customData is no longer
    ``seen``'s, which ``delivery`` (if any) announces."""
    params = {
        "id": seen["execution_id"],
        "seq": seen["seq"],
        "now": now,
        "resumed_by": ResumedBy.WEBHOOK.value,
        "payload": payload,
        "clear_events": leftovers.events,
        "clear_timers": leftovers.timers,
        "delivery_id": None,
        "custom_data": seen["custom_data"],
        "event": None,
        "delivery": None,
        "endpoint": None,
        "traceparent": None,
        "tracestate": None,
    }
    if delivery is not None:
        params.update(
            delivery_id=delivery["id"],
            event=delivery["event"],
            delivery=delivery["payload"],
            endpoint=delivery["endpoint"],
            traceparent=delivery["traceparent"],
            tracestate=delivery["tracestate"],
        )
    done = yield from q.row("resume_call", params, alone=True)
    if done is None:
        return False
    if done["told"]:
        yield Wake(WakeKind.OUTBOX, sent=True)
    return True


def resume_wait(
    execution_id: int, seq: int, resumed_by: ResumedBy, payload: JSON, now: int
) -> Script[bool]:
    """``resume`` without reading anything back, for a script that may end many waits (an
    event); ``False`` if the wait was not the waiting one."""
    return (yield from _resume(execution_id, seq, resumed_by, rows.dump(payload), now))


def get_wait(execution_id: int, seq: int) -> Script[Wait | None]:
    """One wait of an execution."""
    found = yield from q.row("get_wait", {"id": execution_id, "seq": seq})
    return None if found is None else rows.wait_from_row(found)


class _Parked(NamedTuple):
    row: q.Row
    """The execution's row as the park wrote it."""
    taken: list[q.Row]
    """The calls kept for the new wait, taken (deleted)."""
    waits: list[q.Row] | None
    """The execution's waits as the park wrote them, when its statement read them."""


def _park(
    execution_id: int, wait_till: int | None, webhook: WebhookSpec | None, now: int, *, events: bool
) -> Script[_Parked | None]:
    """The park's writes: the conditional move to ``waiting`` at a new wait, the wait's row,
    and the taking of the calls kept for it (PostgreSQL: one statement, ``park_wait``, that
    also reads the waits; SQLite: the waits are the new one's row at a first park, else read
    after); ``None`` if the execution was not ``running``."""
    park_params = rows.park_params(execution_id, wait_till, webhook, events=events)
    wait = {"now": now, "wait_till": wait_till, "webhook": rows.dump_webhook(webhook)}
    if (yield from q.dialect()) == "postgres":
        fused = yield from q.row("park_wait", {**park_params, **wait})
        if fused is None:
            return None
        taken = rows.load(fused["taken_json"]) or []
        return _Parked(fused, taken, rows.load(fused["waits_json"]))
    parked = yield from q.row("park", park_params)
    if parked is None:
        return None
    key = {"id": execution_id, "seq": parked["wait_seq"]}
    new_wait = yield from q.one("insert_wait", {**key, **wait})
    first = [new_wait] if key["seq"] == 1 else None  # the execution's only wait
    return _Parked(parked, (yield from q.rows("take_early_resumes", key)), first)


def _parked_execution(parked: _Parked, *, changed: bool) -> Script[Execution]:
    """The execution after its park, with its waits: as the park wrote them, or read again if
    something ``changed`` them since (a resume, the wait's events)."""
    execution_id = parked.row["id"]
    if changed:
        execution = yield from get_execution(execution_id, with_waits=True)
        assert execution is not None
        return execution
    found = parked.waits
    if found is None:
        found = yield from q.rows("get_waits", {"id": execution_id})
    return rows.execution_from_row(parked.row, tuple(rows.wait_from_row(w) for w in found))


def park(
    execution_id: int,
    wait_till: int | None,
    webhook: WebhookSpec | None,
    now: int,
    admit_early: EarlyAdmission | None = None,
    events: tuple[EventCondition, ...] = (),
    trace: TraceContext | None = None,
) -> Script[ParkOutcome | Unchanged]:
    """Move a ``running`` execution to ``waiting`` at a new wait (waking the timers).

    An early resume recorded for that wait is taken in the same transaction and applied if
    the wait accepts its method and suffix and its caller checks (``admit_early``, run on
    the kept call; see ``gateway.early.judge_early``) find no refusal: the execution is
    then ``running`` again. Otherwise it is dropped, and a refusal is in the outcome.
    ``Unchanged`` if the execution is not ``running``.

    ``events`` are the events the wait may also end on (see ``persistence.event_waits``): they
    are checked (``InvalidInput`` rolls the park back) and, unless the early resume was applied,
    registered; the oldest event kept for one of them within its lookback resumes it at once.
    ``trace`` is the trace context the park continues, kept with the wait.
    """
    parked = yield from _park(execution_id, wait_till, webhook, now, events=bool(events))
    if parked is None:
        return (yield from unchanged(execution_id))
    seq = parked.row["wait_seq"]
    yield from traces.keep_for_wait(execution_id, seq, trace)
    if wait_till is not None:
        yield q.deadline(wait_till)
    if events:
        events = yield from event_waits.check_conditions(execution_id, seq, events)
    kept = [rows.early_resume_from_row(r) for r in sorted(parked.taken, key=lambda r: int(r["n"]))]
    chosen, refused = choose_early(kept, webhook, admit_early, now)
    kept_event = None
    # Resumed here, the wait has no timers yet (they are written below, for a wait still
    # waiting), and conditions only if they were just registered.
    if chosen is not None:
        nothing = Registered(events=False, timers=False)
        yield from _resume(execution_id, seq, ResumedBy.WEBHOOK, chosen.payload, now, nothing)
    elif events:
        kept_event = yield from event_waits.watch(execution_id, seq, events, now)
    if kept_event is not None:
        payload = rows.dump(event_rows.resume_payload(kept_event))
        watched = Registered(events=True, timers=False)
        yield from _resume(execution_id, seq, ResumedBy.EVENT, payload, now, watched)
        yield from event_waits.record_match(kept_event.id, execution_id, seq)
    changed = chosen is not None or kept_event is not None or bool(events)
    execution = yield from _parked_execution(parked, changed=changed)
    approval = None if webhook is None else webhook.approval
    if approval is not None and approval.channels:
        channels = yield from check_channels(approval.channels, execution.project_id)
        if execution.status is Status.WAITING:
            yield from notify(execution, seq, approval, channels, now)
    if approval is not None and execution.status is Status.WAITING:
        yield from timers.schedule(execution_id, seq, approval, now)
    return ParkOutcome(
        execution,
        early_resume_applied=chosen is not None,
        early_resume_discarded=len(kept) > (chosen is not None),
        refused_early=refused,
        kept_event=None if kept_event is None else kept_event.id,
    )


def create_parked(
    new: NewExecution,
    wait_till: int | None,
    webhook: WebhookSpec | None,
    now: int,
    events: tuple[EventCondition, ...] = (),
    trace: TraceContext | None = None,
    wait_trace: TraceContext | None = None,
) -> Script[ParkOutcome]:
    """A new execution parked at its first wait, in one transaction: ``create_execution``
    keeping ``trace``, then ``park`` keeping ``wait_trace``. What the park refuses (event
    conditions, approval channels: ``InvalidInput``) rolls the insert back with it. No call can
    be kept for a wait of an execution that did not exist, so none is taken; an event kept
    within a condition's lookback resumes the new wait at once, as at any park."""
    eid = (yield from insert_execution(new, now, trace, alone=False))["id"]
    outcome = yield from park(eid, wait_till, webhook, now, events=events, trace=wait_trace)
    if isinstance(outcome, Unchanged):
        raise StoreError(f"the new execution {eid} was not running")
    return outcome


def resume(
    execution_id: int, seq: int, resumed_by: ResumedBy, payload: JSON, now: int
) -> Script[Execution | Unchanged]:
    """End wait ``seq`` of a ``waiting`` execution; the execution after, with its waits
    (``Unchanged`` if it was not waiting at that wait: someone else came first)."""
    if not (yield from resume_wait(execution_id, seq, resumed_by, payload, now)):
        return (yield from unchanged(execution_id))
    resumed = yield from get_execution(execution_id, with_waits=True)
    assert resumed is not None
    return resumed


def resume_by_call(
    execution_id: int,
    seq: int,
    method: str,
    suffix: str,
    payload: JSON,
    now: int,
    admit: Admission | None = None,
    *,
    nonce: str,
) -> Script[CallOutcome]:
    """A call of wait ``seq``'s resume URL: resume it if its webhook accepts the method
    and suffix, ``admit`` (the wait's caller checks) finds no refusal, and it is still
    waiting, all in one transaction. The execution must have the URL's ``nonce``
    (otherwise the outcome names no wait). When no wait took the call, the outcome holds the
    execution as this transaction saw it, which says why.

    Its callback is made from the wait and execution it read (no read again). On PostgreSQL
    the reads run outside a transaction and the resume is one statement run alone (see
    ``_resume_call``): two round trips in all, as READ COMMITTED gives each statement its own
    snapshot inside a transaction too; if that statement refuses while the execution still
    waits at the wait (its customData changed since the read), the resume is made as on
    SQLite, in a transaction."""
    key = {"id": execution_id, "seq": seq, "nonce": nonce}
    found = yield from q.row("get_signed_wait", key, alone=True)
    if found is None:
        return CallOutcome(None, execution=(yield from get_execution(execution_id, alone=True)))
    wait = rows.wait_from_row(found)
    if not webhook_accepts(wait.webhook, method, suffix):
        return CallOutcome(wait)
    refusal = None if admit is None or wait.webhook is None else admit(wait.webhook)
    if refusal is not None:
        return CallOutcome(wait, accepted=True, refusal=refusal)
    by, leftovers, stored = ResumedBy.WEBHOOK, registered(wait), rows.dump(payload)
    delivery = None
    if found["callback_url"] is not None:
        ended = dataclasses.replace(wait, resumed_at=now, resumed_by=by, payload=payload)
        delivery = resumed_delivery(found, ended, now)
    seen_callback = True
    if (yield from q.dialect()) == "postgres":
        if (yield from _resume_call(found, stored, now, leftovers, delivery)):
            return CallOutcome(wait, accepted=True, resumed=True)
        seen = yield from get_execution(execution_id, alone=True)
        if seen is None or seen.status is not Status.WAITING or seen.wait_seq != seq:
            return CallOutcome(wait, accepted=True, execution=seen)
        # its customData changed since the read: the resume reads it again
        delivery, seen_callback = None, False
    if (
        yield from _resume(
            execution_id, seq, by, stored, now, leftovers, delivery, seen_callback=seen_callback
        )
    ):
        return CallOutcome(wait, accepted=True, resumed=True)
    return CallOutcome(wait, accepted=True, execution=(yield from get_execution(execution_id)))


def record_early_resume(
    execution_id: int,
    seq: int,
    method: str,
    suffix: str,
    payload: JSON,
    now: int,
    evidence: CallEvidence | None = None,
    *,
    nonce: str,
) -> Script[int | None]:
    """Keep a resume for wait ``seq`` that is not parked yet, with what its caller checks
    need (``evidence``): its number among the calls kept for that wait (1 for the first), or
    ``None`` if the execution is not ``running`` at that wait, does not have the URL's
    ``nonce``, or ``MAX_KEPT`` calls are kept already."""
    params = {
        "id": execution_id,
        "seq": seq,
        "nonce": nonce,
        "method": method,
        "suffix": suffix,
        "payload": rows.dump(payload),
        "now": now,
        "caller": rows.dump_evidence(evidence),
        "max_kept": MAX_KEPT,
    }
    kept = yield from q.row("record_early_resume", params)
    return None if kept is None else int(kept["n"])


def claim_due(now: int, limit: int) -> Script[list[TimedOut]]:
    """Resume (by timeout) up to ``limit`` waits due at ``now`` (on PostgreSQL, replicas skip
    the rows another has locked). An approval wait resumes as its ``onTimeout`` says (reading
    its decisions), or its execution was canceled by the claim itself; other waits take no
    statement beyond marking them."""
    plain = rows.dump({"resumedBy": ResumedBy.TIMEOUT.value})
    timed_out = []
    for found in (yield from q.rows("claim_due", {"now": now, "limit": limit})):
        eid, seq, on_timeout = found["id"], found["seq"], found["wait_on_timeout"]
        payload = plain
        if on_timeout is not None:
            payload = rows.dump((yield from timeout_payload(eid, seq, on_timeout)))
        key = {"id": eid, "seq": seq, "now": now, "payload": payload}
        due = (yield from q.one("mark_wait_timed_out", key))["wait_till"]
        timed_out.append(TimedOut(eid, seq, now - due))
        if found["callback_url"] is not None:
            event = Event.CANCELED if on_timeout == "cancel" else Event.RESUMED
            yield from emit(eid, event, now, seq)
    yield from q.many("clear_wait_events", [{"id": t.execution_id} for t in timed_out])
    yield from timers.clear(t.execution_id for t in timed_out)
    return timed_out


def wait_decisions(execution_id: int, seq: int) -> Script[tuple[Decision, ...]]:
    """The decisions on one wait, in the order they were made."""
    found = yield from q.rows("wait_decisions", {"id": execution_id, "seq": seq})
    return tuple(rows.decision_from_row(r) for r in found)


def timeout_payload(execution_id: int, seq: int, on_timeout: OnTimeout) -> Script[JSON]:
    """What a timed-out approval wait resumes with: ``onTimeout``'s verdict, with every
    decision made before the deadline."""
    wait = yield from get_wait(execution_id, seq)
    spec = None if wait is None or wait.webhook is None else wait.webhook.approval
    if spec is None:
        return {"resumedBy": ResumedBy.TIMEOUT.value, "timedOut": True}
    decisions = yield from wait_decisions(execution_id, seq)
    verdict = TIMEOUT_VERDICTS[on_timeout]
    return approval_payload(spec, decisions, verdict, timed_out=True, by=ResumedBy.TIMEOUT)


def count_overdue(now: int) -> Script[int]:
    """How many waits are past their deadline and not yet resumed (the timer's backlog)."""
    return int((yield from q.one("count_overdue", {"now": now}))["n"])


def next_deadline() -> Script[int | None]:
    """The earliest ``waitTill`` of any waiting execution."""
    found = yield from q.row("next_deadline")
    return None if found is None or found["deadline"] is None else int(found["deadline"])
