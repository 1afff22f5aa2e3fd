"""Why a link no longer works, in words a person reads: used, expired, canceled, ended.

The resume URL, the approval page and the form page say the same thing of a wait that is over,
and never "already answered" when nobody answered (a wait that timed out, or was canceled).
"""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.domain import Execution, ResumedBy, Status, Wait

USED = "This link was already used."
CANCELED = "This request was canceled."
FAILED = "This request ended: its workflow failed."
CLOSED = "This request is no longer waiting."
BY_WORKFLOW = "This request was closed by its workflow before anyone answered."


def _day(at_ms: int) -> str:
    """An instant as a reader's date and time (UTC)."""
    return datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def ended_in_words(execution: Execution, wait: Wait | None) -> str | None:
    """Why ``wait`` can take no answer any more; ``None`` while it still can."""
    if wait is not None and wait.resumed_at is not None:
        match wait.resumed_by:
            case ResumedBy.TIMEOUT:
                return f"This request expired on {_day(wait.resumed_at)}."
            case ResumedBy.API | ResumedBy.EVENT:
                return BY_WORKFLOW
            case _:
                return USED
    current = wait is not None and execution.wait_seq == wait.seq
    if current and execution.status in (Status.WAITING, Status.RUNNING):
        return None
    match execution.status:
        case Status.CANCELED:
            return CANCELED
        case Status.ERROR | Status.CRASHED:
            return FAILED
        case _:
            return CLOSED
