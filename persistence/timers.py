"""The timers of a wait besides its deadline: its approval's reminders and escalation.

Written when the wait parks (waking the scheduler like a deadline), claimed by the scheduler
(``persistence.reminders``), and dropped by whatever ends the wait, in its transaction.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.approvals import ApprovalSpec, TimerKind
from persistence import script as q
from persistence.script import Script


def schedule(execution_id: int, seq: int, spec: ApprovalSpec, now: int) -> Script[None]:
    """Write the reminders and the escalation of wait ``seq`` (parked at ``now``)."""
    due: list[tuple[int, TimerKind, int]] = [
        (now + after, "reminder", n) for n, after in enumerate(spec.reminders, 1)
    ]
    if spec.escalation is not None:
        due.append((now + spec.escalation.after, "escalation", 1))
    params = [
        {"id": execution_id, "seq": seq, "due_at": at, "kind": kind, "n": n} for at, kind, n in due
    ]
    yield from q.many("insert_wait_timer", params)
    if due:
        yield q.deadline(min(at for at, _, _ in due))


def clear(execution_ids: Iterable[int]) -> Script[None]:
    """Drop the timers of these executions' waits (their wait ended)."""
    yield from q.many("clear_wait_timers", [{"id": i} for i in execution_ids])
