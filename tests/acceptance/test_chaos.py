"""Chaos against a real SQLite gateway: duplicates, races, stops and SIGKILLs lose nothing.

The short variant of ``tests.load.chaos`` (``python -m tests.load.chaos`` runs the long one).
The invariant checks are also fed made-up outcomes, to show they catch what they look for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.load.chaos import Call, Journal, Plan, check_invariants, run_chaos

pytestmark = pytest.mark.acceptance
DUE = 1_800_000_000_000
RESUMED = "2027-01-15T08:00:01.000Z"


async def test_duplicates_races_stops_and_kills_lose_nothing(tmp_path: Path) -> None:
    report = await run_chaos(tmp_path, executions=150, kills=2, seconds=8.0)
    assert report.lost == 0, report.violations
    assert report.violations == []
    assert report.parked == 150
    assert report.kills_survived == 2
    assert set(report.statuses) <= {200, 409}, report.statuses
    assert report.acknowledged > 0
    assert report.resumed_by_webhook >= report.acknowledged  # plus calls cut after commit
    assert report.resumed_by_timeout > 0
    assert report.duplicates_refused > 0
    assert report.callback_ids >= report.resumed_by_webhook + report.resumed_by_timeout


def waiting_state(**wait: Any) -> dict[str, Any]:
    """An API answer (includeData) for an execution whose one wait is as given."""
    resumed = wait.get("resumedAt") is not None
    return {
        "status": "running" if resumed else "waiting",
        "stoppedAt": None,
        "data": {"waits": [{"resumedAt": None, "resumedBy": None, "payload": None, **wait}]},
    }


def test_an_acknowledged_resume_that_did_not_persist_is_lost() -> None:
    plan = Plan(1, "url", None, 2, stop=False)
    journal = Journal(resumes={1: [Call("1-0", 200), Call("1-1", 409)]})
    report = check_invariants([plan], {1: waiting_state()}, journal, {}, DUE)
    assert report.lost == 1
    assert "acknowledged resume" in report.violations[0]


def test_a_refused_call_whose_payload_persisted_and_two_acks_are_violations() -> None:
    plan = Plan(1, "url", None, 2, stop=False)
    journal = Journal(resumes={1: [Call("1-0", 200), Call("1-1", 200)]})
    state = waiting_state(resumedAt=RESUMED, resumedBy="webhook", payload={"body": {"call": 1}})
    found = {(1, "execution.resumed"): {"msg_a", "msg_b"}}
    report = check_invariants([plan], {1: state}, journal, found, DUE)
    assert any("2 resume calls acknowledged" in v for v in report.violations)
    assert any("sent under 2 webhook-ids" in v for v in report.violations)
    journal.resumes[1][1].status = 409
    report = check_invariants([plan], {1: state}, journal, found, DUE)
    assert report.lost == 1  # the acknowledged call 0 is not what persisted
    assert any("not an accepted call" in v for v in report.violations)


def test_a_due_timer_that_never_fired_and_an_unannounced_resume_are_lost() -> None:
    timer = Plan(1, None, DUE - 5000, 0, stop=False)
    hook = Plan(2, "url", None, 2, stop=False)
    journal = Journal(resumes={2: [Call("2-0", 200), Call("2-1", None)]})
    states = {
        1: waiting_state(),
        2: waiting_state(resumedAt=RESUMED, resumedBy="webhook", payload={"body": {"call": 0}}),
    }
    report = check_invariants([timer, hook], states, journal, {}, DUE)
    assert report.lost == 2
    assert any("never fired" in v for v in report.violations)
    assert any("execution.resumed never announced" in v for v in report.violations)


def test_a_resume_after_an_acknowledged_stop_is_a_violation() -> None:
    plan = Plan(1, "url", None, 2, stop=True)
    stop = Call("1-stop", 200, sent_at=DUE - 100, answered_at=DUE - 50)
    late = Call("1-0", 200, sent_at=DUE, answered_at=DUE + 10)
    journal = Journal(resumes={1: [late, Call("1-1", 409)]}, stops={1: stop})
    state = waiting_state(resumedAt=RESUMED, resumedBy="webhook", payload={"body": {"call": 0}})
    state |= {"status": "canceled", "stoppedAt": "2027-01-15T08:00:00.000Z"}
    found = {(1, "execution.resumed"): {"msg_a"}, (1, "execution.canceled"): {"msg_b"}}
    report = check_invariants([plan], {1: state}, journal, found, DUE)
    assert report.lost == 0
    assert any("after its stop" in v for v in report.violations)
    assert any("accepted after the stop" in v for v in report.violations)
