"""The audit trail: every resume attempt of an execution, bounded per execution and outcome."""

from __future__ import annotations

from gateway.domain import ResumeAttempt
from persistence import rows
from persistence import script as q
from persistence.script import Script


def record_resume_attempts(attempts: list[ResumeAttempt]) -> Script[None]:
    """Append to the audit trail (attempts for executions that no longer exist are dropped);
    each execution keeps its ``AUDIT_ROWS_KEPT`` most recent rows of each outcome."""
    yield from q.many("record_attempt", [rows.resume_attempt_params(a) for a in attempts])
    yield from q.many("trim_resume_attempts", rows.audit_trims(attempts))


def resume_attempts(execution_id: int) -> Script[list[ResumeAttempt]]:
    """An execution's audit trail, oldest first."""
    found = yield from q.rows("execution_resume_attempts", {"id": execution_id})
    return [rows.resume_attempt_from_row(r) for r in found]
