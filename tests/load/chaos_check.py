"""The invariants of a chaos run, checked from final states, what the clients saw, the events
the gateway kept and the callbacks the receiver got.

``check_invariants`` is a pure function of those, so tests feed it made-up outcomes to show it
catches each kind of loss.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tests.load.chaos_model import (
    CANCELED,
    EVENT_NAME,
    RESUMED,
    SOURCE,
    Call,
    ChaosReport,
    Delivery,
    Down,
    Journal,
    Park,
    Plan,
    Sent,
    State,
    ms,
    wait_of,
)

GRACE_MS = 1000
"""How long after its (effective) deadline a stop still counts as beating a timer."""
SKEW_MS = 5
"""How far the gateway's instants may run ahead of the harness's clock (on PostgreSQL its
clock follows the server's by an offset measured to a few milliseconds)."""
Found = dict[tuple[int, str], set[str]]
"""The webhook-ids the receiver got per (execution, callback type)."""
Named = dict[int, set[str]]
"""The event ids the ``execution.resumed`` callbacks of each execution named."""


def stopped_first(state: State, deadline: int, down: Down) -> bool:
    """Whether a stop beat the timer: it came before the deadline or, for a deadline that
    passed while the gateway was down, before the restart (with ``GRACE_MS`` either way)."""
    stopped = ms(state.get("stoppedAt"))
    due = max([deadline, *(up for gone, up in down if gone <= deadline < up)])
    return state["status"] == "canceled" and stopped is not None and stopped < due + GRACE_MS


def unfired(plans: list[Plan], states: dict[int, State], now: int, down: Down) -> list[int]:
    """Executions whose timer is due but that neither resumed nor were stopped first."""
    return [
        p.eid
        for p in plans
        if p.deadline is not None
        and p.deadline <= now
        and wait_of(states[p.eid]).get("resumedAt") is None
        and not stopped_first(states[p.eid], p.deadline, down)
    ]


def expected_callbacks(states: dict[int, State]) -> set[tuple[int, str]]:
    """The callbacks the final states call for: each resume and each stop."""
    expected = set()
    for eid, state in states.items():
        if wait_of(state).get("resumedAt") is not None:
            expected.add((eid, RESUMED))
        if state["status"] == "canceled":
            expected.add((eid, CANCELED))
    return expected


def _check_resumes(plan: Plan, state: State, calls: list[Call], report: ChaosReport) -> None:
    """At most one 200 per wait, persisted with its payload; a refused call never was."""
    eid, waits = plan.eid, state.get("data", {}).get("waits", [])
    resumed = [w for w in waits if w.get("resumedAt") is not None]
    if len(waits) != 1 or len(resumed) > 1:
        report.violations.append(f"{eid}: {len(waits)} waits, {len(resumed)} resumed")
    wait = wait_of(state)
    acked = [k for k, c in enumerate(calls) if c.status == 200]
    body = (wait.get("payload") or {}).get("body")
    if len(acked) > 1:
        report.violations.append(f"{eid}: {len(acked)} resume calls acknowledged")
    if acked and (wait.get("resumedBy") != "webhook" or body != {"call": acked[0]}):
        report.lost += 1
        report.violations.append(f"{eid}: acknowledged resume call {acked[0]} lost: {wait}")
    if wait.get("resumedBy") == "webhook":
        allowed = [{"call": k} for k, c in enumerate(calls) if c.status in {200, None}]
        if body not in allowed:
            report.violations.append(f"{eid}: resumed with {body}, not an accepted call")
        elif not acked:
            report.unknown_committed += 1  # the winning call was cut after its commit
    if wait.get("resumedBy") == "timeout":
        fired, due = ms(wait.get("resumedAt")), plan.deadline
        if due is None or fired is None or fired < due:
            report.violations.append(f"{eid}: timer fired at {fired}, due {due}")
    quiet = not calls and plan.deadline is None and not plan.stop and plan.order is None
    if quiet and (state["status"] != "waiting" or wait.get("resumedAt") is not None):
        report.violations.append(f"{eid}: nobody resumed it, yet it is {state['status']}")


def _check_stop(
    plan: Plan, state: State, calls: list[Call], stop: Call, report: ChaosReport
) -> None:
    """An acknowledged stop persisted; nothing resumed the execution after it."""
    eid = plan.eid
    stopped_at = ms(state.get("stoppedAt"))
    if stop.status == 200:
        report.stops += 1
        if state["status"] != "canceled" or stopped_at is None:
            report.lost += 1
            report.violations.append(f"{eid}: acknowledged stop lost, status {state['status']}")
    elif stop.status is not None:
        report.violations.append(f"{eid}: stop answered {stop.status}")
    if state["status"] != "canceled" or stopped_at is None:
        return
    resumed_at = ms(wait_of(state).get("resumedAt"))
    if resumed_at is not None and resumed_at > stopped_at:
        report.violations.append(f"{eid}: resumed at {resumed_at} after its stop {stopped_at}")
    if stop.status == 200:
        after = [c for c in calls if c.status == 200 and c.sent_at > stop.answered_at]
        if after:
            report.violations.append(f"{eid}: resume {after[0].call_id} accepted after the stop")


def _check_timer(plan: Plan, state: State, end: int, journal: Journal, report: ChaosReport) -> None:
    """A timer due by the end fired, unless a stop came first; count those due while down."""
    if plan.deadline is None or plan.deadline > end:
        return
    if unfired([plan], {plan.eid: state}, end, journal.down):
        report.lost += 1
        report.violations.append(f"{plan.eid}: timer due at {plan.deadline} never fired")
    if wait_of(state).get("resumedBy") == "timeout":
        report.timers_due_while_down += any(a <= plan.deadline < b for a, b in journal.down)


def _check_callbacks(expected: set[tuple[int, str]], found: Found, report: ChaosReport) -> None:
    """Every resume and stop announced, each under one webhook-id, nothing invented."""
    for eid, kind in sorted(expected - set(found)):
        report.lost += 1
        report.violations.append(f"{eid}: {kind} never announced")
    for eid, kind in sorted(set(found) - expected):
        report.violations.append(f"{eid}: {kind} announced but did not happen")
    for (eid, kind), ids in sorted(found.items()):
        if len(ids) > 1:
            report.violations.append(f"{eid}: {kind} sent under {len(ids)} webhook-ids")
    report.callback_ids = len({i for ids in found.values() for i in ids})


def _check_lookback(
    plan: Plan, state: State, sent: Sent | None, park: Park | None, report: ChaosReport
) -> None:
    """An event acknowledged before the park is applied at the park, in its transaction."""
    eid, waits = plan.eid, state.get("data", {}).get("waits", [])
    acked = sent is not None and any(d.status == 200 for d in sent.deliveries)
    if park is None or (park.status is None and not waits):
        return  # never parked, or the park was cut before its commit
    if park.status not in {200, None} or len(waits) != 1:
        report.violations.append(f"{eid}: park answered {park.status}, {len(waits)} waits")
        return
    wait = waits[0]
    if not acked:
        return
    assert sent is not None
    named = (wait.get("payload") or {}).get("eventId")
    applied = wait.get("resumedBy") == "event" and named == sent.event_id
    if not applied or (park.status == 200 and not park.running):
        report.lost += 1
        report.violations.append(
            f"{eid}: event {sent.event_id} acknowledged before the park not applied at park "
            f"(park answered running={park.running}, wait {wait.get('resumedBy')} by {named})"
        )
    elif wait.get("resumedAt") != wait.get("parkedAt"):
        report.violations.append(f"{eid}: {sent.event_id} applied after the park, not at it")
    else:
        report.applied_at_park += 1


def _check_event_payload(
    plan: Plan, wait: dict[str, Any], journal: Journal, report: ChaosReport
) -> str | None:
    """An event-resumed wait names an event that was sent about its order; which one."""
    payload = wait.get("payload") or {}
    key = payload.get("eventId")
    sent = journal.events.get(str(key))
    body = payload.get("body") or {}
    order = (body.get("order") or {}).get("id") if isinstance(body, dict) else None
    named = (payload.get("source"), payload.get("name"), order)
    if sent is None or plan.eid not in sent.targets or named != (SOURCE, EVENT_NAME, plan.order):
        report.violations.append(f"{plan.eid}: resumed by event {key} {named}, not one for it")
    return None if key is None else str(key)


def _ended_at(state: State) -> int | None:
    wait = wait_of(state)
    ends = [ms(wait.get("resumedAt")), ms(state.get("stoppedAt"))]
    return min((e for e in ends if e is not None), default=None)


def _check_sent(
    sent: Sent,
    rows: list[dict[str, Any]],
    resumed: list[int],
    states: dict[int, State],
    report: ChaosReport,
) -> None:
    """One event id processed once: one kept original, duplicates that changed nothing, its
    count of matches the waits that name it; an acknowledged event durable."""
    key, acked = sent.event_id, [d for d in sent.deliveries if d.status == 200]
    firsts = [d for d in acked if not d.duplicate]
    originals = [r for r in rows if r.get("status") != "duplicate"]
    if len(firsts) > 1:
        report.violations.append(f"{key}: processed {len(firsts)} times (not duplicates)")
    if len(originals) > 1:
        report.violations.append(f"{key}: kept {len(originals)} times, not as duplicates")
    if any(r.get("matched") for r in rows if r.get("status") == "duplicate"):
        report.violations.append(f"{key}: a duplicate resumed something")
    if acked and not originals:
        report.lost += 1
        report.violations.append(f"{key}: acknowledged event lost (not kept)")
    if originals and originals[0].get("matched") != len(resumed):
        count = originals[0].get("matched")
        report.violations.append(f"{key}: counts {count} matches, {len(resumed)} waits name it")
    strangers = sorted(set(resumed) - set(sent.targets))
    if strangers:
        report.violations.append(f"{key}: resumed {strangers}, which it does not match")
    if firsts:
        _check_answer(sent, firsts[0], resumed, states, report)


def _check_answer(
    sent: Sent, first: Delivery, resumed: list[int], states: dict[int, State], report: ChaosReport
) -> None:
    """The first answer that was not a duplicate: as many waits resumed by the event as it
    said (none for an event sent before its wait parked), and every other wait it matches
    ended before it was answered."""
    key, matched = sent.event_id, first.matched or 0
    if sent.lookback:
        if matched:
            report.violations.append(f"{key}: matched {matched} before its wait parked")
        return
    if matched > len(resumed):
        report.lost += matched - len(resumed)
        report.violations.append(f"{key}: answered {matched} matched, {len(resumed)} kept")
        return
    if matched < len(resumed):
        report.violations.append(f"{key}: answered {matched} matched, yet {resumed} name it")
        return
    for eid in sorted(set(sent.targets) - set(resumed)):
        ended = _ended_at(states[eid])
        if ended is None or ended > first.answered_at + SKEW_MS:
            report.lost += 1
            report.violations.append(f"{eid}: {key} matched nothing while its wait was open")


def _check_events(
    plans: list[Plan],
    states: dict[int, State],
    journal: Journal,
    stored: Iterable[dict[str, Any]],
    named: Named,
    report: ChaosReport,
) -> None:
    """Every event sent, against the events kept (``GET /api/v1/events``), the waits they
    resumed and the callbacks that announced those resumes."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for row in stored:
        rows.setdefault(str(row.get("eventId")), []).append(row)
    resumed_by: dict[str, list[int]] = {}
    for plan in plans:
        wait = wait_of(states[plan.eid])
        if wait.get("resumedBy") != "event":
            if plan.eid in named:
                report.violations.append(f"{plan.eid}: callback names {named[plan.eid]}")
            continue
        key = _check_event_payload(plan, wait, journal, report)
        resumed_by.setdefault(str(key), []).append(plan.eid)
        if plan.eid in named and named[plan.eid] != {key}:
            report.violations.append(
                f"{plan.eid}: resumed by {key}, its callback names {named[plan.eid]}"
            )
    for sent in journal.events.values():
        resumed = resumed_by.pop(sent.event_id, [])
        _check_sent(sent, rows.get(sent.event_id, []), resumed, states, report)
        report.events_fanned_out += len(resumed) > 1
    for key, eids in sorted(resumed_by.items()):
        report.violations.append(f"{eids}: resumed by event {key}, which nobody sent")
    deliveries = [d for sent in journal.events.values() for d in sent.deliveries]
    report.events_sent = len(journal.events)
    report.strays = sum(not sent.targets for sent in journal.events.values())
    report.deliveries = len(deliveries)
    report.deliveries_acknowledged = sum(d.status == 200 for d in deliveries)
    report.deliveries_duplicate = sum(d.status == 200 and d.duplicate for d in deliveries)
    report.deliveries_unknown = sum(d.status is None for d in deliveries)
    for sent in journal.events.values():
        answered = [d for d in sent.deliveries if d.status == 200]
        report.kept_though_cut += bool(answered) and all(d.duplicate for d in answered)
    report.statuses.update(d.status for d in deliveries if d.status is not None)


def check_invariants(
    plans: list[Plan],
    states: dict[int, State],
    journal: Journal,
    found: Found,
    end: int,
    stored: Iterable[dict[str, Any]] = (),
    named: Named | None = None,
) -> ChaosReport:
    """Every invariant for every execution and event, given the final ``states`` (API
    answers with ``includeData``), what the clients saw, the webhook-ids the receiver got per
    (execution, callback type), the events the gateway kept (``stored``: API answers) and
    the event ids the resume callbacks named (``named``): the figures, ``lost`` and
    ``violations`` of the report."""
    report = ChaosReport(parked=len(plans))
    named = {} if named is None else named
    early = {t: s for s in journal.events.values() if s.lookback for t in s.targets}
    for plan in plans:
        state, calls = states[plan.eid], journal.resumes.get(plan.eid, [])
        if plan.lookback:
            _check_lookback(plan, state, early.get(plan.eid), journal.parks.get(plan.eid), report)
        else:
            _check_resumes(plan, state, calls, report)
        if plan.eid in journal.stops:
            _check_stop(plan, state, calls, journal.stops[plan.eid], report)
        _check_timer(plan, state, end, journal, report)
        by = wait_of(state).get("resumedBy")
        report.resumed_by_webhook += by == "webhook"
        report.resumed_by_timeout += by == "timeout"
        report.resumed_by_event += by == "event"
    resumes = [c for calls in journal.resumes.values() for c in calls]
    every = resumes + list(journal.stops.values())
    report.statuses.update(c.status for c in every if c.status is not None)
    report.acknowledged = sum(c.status == 200 for c in resumes)
    report.duplicates_refused = sum(c.status == 409 for c in resumes)
    report.unknown = sum(c.status is None for c in every)
    _check_events(plans, states, journal, stored, named, report)
    report.violations += [f"answered {s}" for s in report.statuses if s >= 500]
    _check_callbacks(expected_callbacks(states), found, report)
    report.kills_survived = journal.kills
    return report
