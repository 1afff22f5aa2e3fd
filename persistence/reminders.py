"""Claiming the timers of approval waits (``persistence.timers``): reminders and escalation.

A claim deletes up to ``limit`` due timers (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so replicas
never take the same row; SQLite: the single writer) and, in the same transaction, does what
each says, so each fires exactly once. A timer first takes its execution while it waits at
that wait (``lock_waiting``, as a decision does), so it is judged before or after a concurrent
decision, never beside it; a wait that has ended meanwhile fires nothing.

- a reminder tells the approvers who may decide and have not, through the approval's channels
  (those that still exist), marked as a reminder; nobody left: nothing is sent;
- the escalation adds its approvers to the wait's approval (kept in the wait, so their
  personal links, the inbox and the rules see them) and tells them.
"""

from __future__ import annotations

import dataclasses

from gateway.approvals import ApprovalSpec, TimerFired
from gateway.domain import Execution, Wait
from persistence import rows
from persistence import script as q
from persistence.channels import Told, existing_channels, notify
from persistence.executions import get_execution
from persistence.script import Script
from persistence.waits import get_wait, wait_decisions


def claim_timers(now: int, limit: int) -> Script[list[TimerFired]]:
    """Fire up to ``limit`` timers due at ``now``; those that did something."""
    claimed = yield from q.rows("claim_wait_timers", {"now": now, "limit": limit})
    fired = []
    for timer in sorted(claimed, key=lambda r: (int(r["due_at"]), int(r["id"]))):
        eid, seq, kind = int(timer["execution_id"]), int(timer["seq"]), timer["kind"]
        if (yield from q.row("lock_waiting", {"id": eid, "seq": seq})) is None:
            continue
        wait = yield from get_wait(eid, seq)
        spec = None if wait is None or wait.webhook is None else wait.webhook.approval
        execution = yield from get_execution(eid)
        if wait is None or spec is None or execution is None:
            continue
        if kind == "reminder":
            told = yield from _remind(execution, seq, spec, now)
        else:
            told = yield from _escalate(execution, wait, spec, now)
        if told:
            late = now - int(timer["due_at"])
            fired.append(TimerFired(eid, seq, kind, int(timer["n"]), late, told))
    return fired


def _remind(
    execution: Execution, seq: int, spec: ApprovalSpec, now: int
) -> Script[tuple[str, ...]]:
    """Remind the approvers who have not decided; their ids."""
    decided = {d.approver for d in (yield from wait_decisions(execution.id, seq))}
    asked = tuple(a for a in spec.approvers if a.id in spec.eligible and a.id not in decided)
    if asked:
        channels = yield from existing_channels(spec.channels, execution.project_id)
        yield from notify(execution, seq, spec, channels, now, Told("reminder", asked))
    return tuple(a.id for a in asked)


def _escalate(
    execution: Execution, wait: Wait, spec: ApprovalSpec, now: int
) -> Script[tuple[str, ...]]:
    """Add the escalation's approvers to the wait and tell them; their ids."""
    escalation, seq = spec.escalation, wait.seq
    if escalation is None or wait.webhook is None:
        return ()
    grown = dataclasses.replace(
        spec, approvers=spec.approvers + escalation.approvers, escalation=None
    )
    webhook = dataclasses.replace(wait.webhook, approval=grown)
    params = {"id": execution.id, "seq": seq, "webhook": rows.dump_webhook(webhook)}
    yield from q.count("set_wait_webhook", params)
    channels = yield from existing_channels(spec.channels, execution.project_id)
    yield from notify(
        execution, seq, grown, channels, now, Told("escalation", escalation.approvers)
    )
    return tuple(a.id for a in escalation.approvers)
