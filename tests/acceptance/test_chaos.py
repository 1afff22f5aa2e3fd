"""Chaos against a real SQLite gateway: duplicate and racing calls and signed events (with
redeliveries, lookback, fan-out and strays), stops and SIGKILLs lose nothing and do nothing
twice.

The short variant of ``tests.load.chaos`` (``python -m tests.load.chaos`` runs the long one).
The invariant checks are also fed made-up outcomes, to show they catch what they look for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.load.chaos import Call, Journal, Plan, check_invariants, run_chaos
from tests.load.chaos_model import EVENT_NAME, SOURCE, Delivery, Park, Sent, ms
from tests.load.chaos_model import RESUMED as RESUMED_CB

pytestmark = pytest.mark.acceptance
DUE = 1_800_000_000_000
RESUMED = "2027-01-15T08:00:01.000Z"


async def test_duplicates_races_events_stops_and_kills_lose_nothing(tmp_path: Path) -> None:
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
    assert report.resumed_by_event > 0
    assert report.events_fanned_out > 0
    assert report.applied_at_park > 0
    assert report.deliveries_duplicate > 0
    assert report.deliveries_unknown > 0  # each delivered again until answered
    assert report.strays >= 2
    resumed = report.resumed_by_webhook + report.resumed_by_timeout + report.resumed_by_event
    assert report.callback_ids >= resumed


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


def event_state(event_id: str, order: str, **wait: Any) -> dict[str, Any]:
    """An API answer (includeData) for an execution resumed by the event ``event_id``."""
    payload = {
        "source": SOURCE,
        "eventId": event_id,
        "name": EVENT_NAME,
        "body": {"type": EVENT_NAME, "order": {"id": order}},
        "resumedBy": "event",
    }
    return waiting_state(resumedAt=RESUMED, resumedBy="event", payload=payload, **wait)


def kept(event_id: str, matched: int, status: str = "matched") -> dict[str, Any]:
    """An event as ``GET /api/v1/events`` lists it."""
    return {"eventId": event_id, "status": status, "matched": matched}


def answered(matched: int, duplicate: bool = False, at: int = DUE) -> Delivery:
    return Delivery("d", 200, sent_at=at - 10, answered_at=at, matched=matched, duplicate=duplicate)


def test_an_acknowledged_event_match_that_did_not_persist_is_lost() -> None:
    plan = Plan(1, None, None, 0, stop=False, order="o1")
    sent = Sent("o1-a", "o1", targets=(1,), deliveries=[answered(1)])
    journal = Journal(events={"o1-a": sent})
    report = check_invariants([plan], {1: waiting_state()}, journal, {}, DUE, [])
    assert report.lost == 2  # the event is not kept, and the wait it matched still waits
    assert any("acknowledged event lost" in v for v in report.violations)
    assert any("answered 1 matched, 0 kept" in v for v in report.violations)
    report = check_invariants([plan], {1: waiting_state()}, journal, {}, DUE, [kept("o1-a", 1)])
    assert report.lost == 1
    assert any("counts 1 matches, 0 waits name it" in v for v in report.violations)


def test_an_event_processed_twice_or_a_duplicate_that_resumed_are_violations() -> None:
    plans = [Plan(1, None, None, 0, stop=False, order="o1"), Plan(2, None, None, 0, False, "o1")]
    sent = Sent("o1-a", "o1", targets=(1, 2), deliveries=[answered(1), answered(1)])
    journal = Journal(events={"o1-a": sent})
    states = {1: event_state("o1-a", "o1"), 2: event_state("o1-a", "o1")}
    stored = [kept("o1-a", 1), kept("o1-a", 1), kept("o1-a", 1, status="duplicate")]
    found = {(1, RESUMED_CB): {"m1"}, (2, RESUMED_CB): {"m2"}}
    report = check_invariants(plans, states, journal, found, DUE, stored)
    assert any("processed 2 times" in v for v in report.violations)
    assert any("kept 2 times" in v for v in report.violations)
    assert any("a duplicate resumed something" in v for v in report.violations)
    assert any("answered 1 matched, yet [1, 2] name it" in v for v in report.violations)
    sent.deliveries = [answered(2), answered(0, duplicate=True)]
    report = check_invariants(plans, states, journal, found, DUE, [kept("o1-a", 2)])
    assert (report.lost, report.violations, report.events_fanned_out) == (0, [], 1)


def test_a_wait_resumed_twice_or_by_an_event_for_another_order_is_a_violation() -> None:
    plan = Plan(1, "url", None, 1, stop=False, order="o1")
    sent = Sent("o1-a", "o1", targets=(1,), deliveries=[answered(1)])
    journal = Journal(resumes={1: [Call("1-0", 200)]}, events={"o1-a": sent})
    state = event_state("o1-a", "o1")
    report = check_invariants([plan], {1: state}, journal, {}, DUE, [kept("o1-a", 1)])
    assert report.lost >= 1
    assert any("acknowledged resume call 0 lost" in v for v in report.violations)
    journal.resumes[1][0].status = 409
    stray = Sent("stray-1", "o2", deliveries=[answered(0)])
    journal.events["stray-1"] = stray
    state = event_state("stray-1", "o2")
    stored = [kept("o1-a", 1), kept("stray-1", 0, status="unmatched")]
    report = check_invariants([plan], {1: state}, journal, {}, DUE, stored)
    assert any("resumed by event stray-1" in v and "not one for it" in v for v in report.violations)
    assert any("stray-1: resumed [1], which it does not match" in v for v in report.violations)


def test_an_event_that_matched_nothing_while_its_wait_was_open_is_lost() -> None:
    plan = Plan(1, "url", None, 1, stop=False, order="o1")
    sent = Sent("o1-a", "o1", targets=(1,), deliveries=[answered(0)])
    journal = Journal(resumes={1: [Call("1-0", 200)]}, events={"o1-a": sent})
    state = waiting_state(resumedAt=RESUMED, resumedBy="webhook", payload={"body": {"call": 0}})
    resumed_at = ms(RESUMED)
    assert resumed_at is not None
    stored, found = [kept("o1-a", 0, status="unmatched")], {(1, RESUMED_CB): {"m1"}}
    sent.deliveries[0].answered_at = resumed_at - 10  # answered while the wait was still open
    report = check_invariants([plan], {1: state}, journal, found, DUE, stored)
    assert report.lost == 1
    assert report.violations == ["1: o1-a matched nothing while its wait was open"]
    sent.deliveries[0].answered_at = resumed_at + 1  # answered after the URL call resumed it
    assert check_invariants([plan], {1: state}, journal, found, DUE, stored).violations == []


def test_a_lookback_event_not_applied_at_park_is_lost() -> None:
    plan = Plan(1, None, None, 0, stop=False, order="o1", lookback=True)
    sent = Sent("o1-a", "o1", targets=(1,), lookback=True, deliveries=[answered(0)])
    park = Park("1-park", 200, running=False)
    journal = Journal(events={"o1-a": sent}, parks={1: park})
    stored = [kept("o1-a", 0, status="unmatched")]
    report = check_invariants([plan], {1: waiting_state()}, journal, {}, DUE, stored)
    assert report.lost == 1
    assert any("not applied at park" in v for v in report.violations)
    later = event_state("o1-a", "o1", parkedAt="2027-01-15T08:00:00.000Z")
    park.running = True
    report = check_invariants([plan], {1: later}, journal, {}, DUE, [kept("o1-a", 1)])
    assert any("applied after the park" in v for v in report.violations)
    at_park = event_state("o1-a", "o1", parkedAt=RESUMED)
    found = {(1, RESUMED_CB): {"m1"}}
    report = check_invariants(
        [plan], {1: at_park}, journal, found, DUE, [kept("o1-a", 1)], {1: {"o1-a"}}
    )
    assert (report.lost, report.violations, report.applied_at_park) == (0, [], 1)


def test_an_event_resume_announced_twice_or_naming_another_event_is_a_violation() -> None:
    plan = Plan(1, None, None, 0, stop=False, order="o1")
    sent = Sent("o1-a", "o1", targets=(1,), deliveries=[answered(1)])
    journal = Journal(events={"o1-a": sent})
    state = event_state("o1-a", "o1")
    found = {(1, RESUMED_CB): {"m1", "m2"}}
    named = {1: {"o1-a", "o1-b"}}
    report = check_invariants([plan], {1: state}, journal, found, DUE, [kept("o1-a", 1)], named)
    assert any("sent under 2 webhook-ids" in v for v in report.violations)
    assert any("callback names" in v for v in report.violations)
    report = check_invariants([plan], {1: state}, journal, {}, DUE, [kept("o1-a", 1)])
    assert report.lost == 1
    assert any("execution.resumed never announced" in v for v in report.violations)
