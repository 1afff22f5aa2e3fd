"""The audit trail: every resume attempt of an execution, bounded per execution and outcome."""

from __future__ import annotations

from gateway.domain import AuditPair, ResumeAttempt
from persistence import rows
from persistence import script as q
from persistence.script import Script


def record_resume_attempts(
    attempts: list[ResumeAttempt], trim: list[AuditPair] | None = None
) -> Script[None]:
    """Append to the audit trail (attempts for executions that no longer exist are dropped),
    then cut each (execution, outcome) pair of ``trim`` back to its ``AUDIT_ROWS_KEPT`` most
    recent rows (by default every pair of ``attempts``)."""
    if attempts:
        yield from q.count("record_attempts", {"attempts": rows.audit_rows(attempts)})
    pairs = rows.audit_pairs(attempts) if trim is None else trim
    if pairs:
        yield from q.count("trim_resume_attempts", rows.audit_trims(pairs))


def resume_attempts(execution_id: int) -> Script[list[ResumeAttempt]]:
    """An execution's audit trail, oldest first."""
    found = yield from q.rows("execution_resume_attempts", {"id": execution_id})
    return [rows.resume_attempt_from_row(r) for r in found]
