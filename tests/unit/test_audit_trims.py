"""When the audit trail cuts an (execution, outcome) pair back: after every ``TRIM_EVERY`` rows a
process wrote of it, when it stops counting it, after a failed write, and at shutdown; never for
the usual execution with one call."""

from __future__ import annotations

from gateway.audit import TrimSchedule
from gateway.domain import AttemptOutcome, ResumeAttempt


def attempts(*pairs: tuple[int, AttemptOutcome]) -> list[ResumeAttempt]:
    return [ResumeAttempt(eid, 1, 0, "POST", 200, outcome, "r") for eid, outcome in pairs]


def test_executions_called_once_are_never_cut_back() -> None:
    schedule = TrimSchedule(every=3, counted=100)
    for eid in range(50):
        assert schedule.due(attempts((eid, "accepted"))) == []


def test_a_pair_is_cut_back_after_every_so_many_of_its_rows() -> None:
    schedule = TrimSchedule(every=3, counted=100)
    assert schedule.due(attempts((1, "refused"), (1, "refused"), (1, "accepted"))) == []
    assert schedule.due(attempts((1, "refused"))) == [(1, "refused")]
    assert schedule.due(attempts((1, "refused"), (1, "refused"))) == []  # counted from zero
    assert schedule.due(attempts((1, "refused"))) == [(1, "refused")]
    seven: list[tuple[int, AttemptOutcome]] = [(2, "refused")] * 7
    assert schedule.due(attempts(*seven)) == [(2, "refused")]  # once a write


def test_a_pair_no_longer_counted_is_cut_back_at_once() -> None:
    """Else a flood of other executions could push a pair out before its count came due,
    again and again, and its rows would grow without bound."""
    schedule = TrimSchedule(every=3, counted=2)
    assert schedule.due(attempts((1, "refused"), (1, "refused"))) == []
    assert schedule.due(attempts((2, "refused"), (3, "refused"))) == [(1, "refused")]
    assert schedule.due(attempts((2, "refused"))) == []  # 2 is now the most recently written
    assert schedule.due(attempts((4, "refused"))) == [(3, "refused")]


def test_the_pairs_of_a_failed_write_are_cut_back_by_the_next() -> None:
    schedule = TrimSchedule(every=2, counted=10)
    due = schedule.due(attempts((1, "refused"), (1, "refused")))
    assert due == [(1, "refused")]
    schedule.failed(due)
    assert schedule.due(attempts((5, "accepted"))) == [(1, "refused")]


def test_at_shutdown_every_counted_pair_is_cut_back_once() -> None:
    schedule = TrimSchedule(every=5, counted=10)
    schedule.due(attempts((1, "refused"), (2, "accepted"), (1, "shown")))
    schedule.failed([(9, "refused")])
    assert sorted(schedule.everything()) == [
        (1, "refused"),
        (1, "shown"),
        (2, "accepted"),
        (9, "refused"),
    ]
    assert schedule.everything() == []
