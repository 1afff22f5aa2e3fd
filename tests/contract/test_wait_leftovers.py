"""What a wait registered besides its row (event conditions, approval timers) is gone once it
ends, however it ends, on every backend; the store skips those deletes for a wait that has
none, so each test ends a wait that has some and looks at the tables themselves."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.approvals import Approver, Escalation
from gateway.domain import NewExecution, ResumedBy, Status, WebhookSpec
from gateway.event_model import EventCondition, EventSource, IncomingEvent
from persistence import script as q
from persistence.base import Store
from tests.contract.test_wait_timers import SPEC

NOW = 1_800_000_000_000
HOOK = WebhookSpec(methods=("POST",))
STRIPE = EventSource("stripe", {"type": "stripe", "secret": "whsec_x"}, event_id_path="id")
ORDER = "data.object.metadata.orderId"
APPROVAL = SPEC
TABLES = ("wait_events", "wait_match_keys", "wait_timers")


def waits_for(order: str) -> tuple[EventCondition, ...]:
    return (EventCondition("stripe", None, ((ORDER, order),)),)


def order_event(order: str) -> IncomingEvent:
    body = {"id": order, "type": "t", "data": {"object": {"metadata": {"orderId": order}}}}
    return IncomingEvent("stripe", order, "t", body, {})


async def left(store: Store, eid: int) -> dict[str, int]:
    """The rows each table still holds for the execution."""
    found = {}
    for table in TABLES:

        def text(_dialect: str, table: str = table) -> str:
            return f"SELECT count(*) AS n FROM {table} WHERE execution_id = :id"

        (row,) = await store.db.read(q.rows(table, {"id": eid}, text))
        found[table] = int(row["n"])
    return found


NONE_LEFT = dict.fromkeys(TABLES, 0)


@pytest.fixture
async def source(store: Store) -> EventSource:
    created = await store.create_event_source(STRIPE, NOW)
    assert created is not None
    return created


async def call(store: Store, eid: int, seq: int = 1) -> bool:
    execution = await store.get_execution(eid)
    assert execution is not None
    outcome = await store.resume_by_call(
        eid, seq, "POST", "", {"k": 1}, NOW + 5, nonce=execution.nonce
    )
    return outcome.resumed


async def parked(store: Store, webhook: WebhookSpec | None, **park: object) -> int:
    eid = (await store.create_execution(NewExecution("wf"), NOW)).id
    outcome = await store.park(eid, None, webhook, NOW, **park)  # type: ignore[arg-type]
    assert outcome
    return eid


async def test_an_event_wait_resumed_by_its_url_leaves_no_conditions(
    store: Store, source: EventSource
) -> None:
    eid = await parked(store, HOOK, events=waits_for("o-1"))
    assert (await left(store, eid))["wait_events"] == 1
    assert (await left(store, eid))["wait_match_keys"] == 1
    assert await call(store, eid)
    assert await left(store, eid) == NONE_LEFT
    outcome = await store.record_event(order_event("o-1"), NOW + 6)
    assert outcome is not None
    assert outcome.resumed == ()


async def test_an_approval_with_timers_resumed_by_its_url_leaves_none(store: Store) -> None:
    eid = await parked(store, dataclasses.replace(HOOK, approval=APPROVAL))
    assert (await left(store, eid))["wait_timers"] == 3
    assert await call(store, eid)
    assert await left(store, eid) == NONE_LEFT
    assert await store.claim_timers(NOW + 10_000, 100) == []


async def test_an_approval_whose_escalation_fired_leaves_its_reminders_none(
    store: Store,
) -> None:
    early_escalation = dataclasses.replace(APPROVAL, escalation=Escalation(500, (Approver("c"),)))
    eid = await parked(store, dataclasses.replace(HOOK, approval=early_escalation))
    (fired,) = await store.claim_timers(NOW + 500, 10)
    assert fired.kind == "escalation"
    assert (await left(store, eid))["wait_timers"] == 2
    assert await call(store, eid)
    assert await left(store, eid) == NONE_LEFT


async def test_an_approval_with_only_an_escalation_resumed_after_it_fired(store: Store) -> None:
    only = dataclasses.replace(APPROVAL, reminders=(), escalation=Escalation(500, ()))
    eid = await parked(store, dataclasses.replace(HOOK, approval=only))
    assert (await left(store, eid))["wait_timers"] == 1
    assert len(await store.claim_timers(NOW + 500, 10)) <= 1
    assert await call(store, eid)
    assert await left(store, eid) == NONE_LEFT


async def test_a_plain_webhook_wait_and_the_next_one_leave_nothing(
    store: Store, source: EventSource
) -> None:
    eid = await parked(store, HOOK)
    assert await call(store, eid)
    assert await left(store, eid) == NONE_LEFT
    assert await store.park(eid, None, HOOK, NOW + 10, events=waits_for("o-2"))
    assert await call(store, eid, seq=2)
    assert await left(store, eid) == NONE_LEFT
    assert await store.park(eid, None, dataclasses.replace(HOOK, approval=APPROVAL), NOW + 20)
    assert await store.resume(eid, 3, ResumedBy.API, None, NOW + 30)
    assert await left(store, eid) == NONE_LEFT


async def test_a_park_that_takes_a_kept_event_leaves_no_conditions(
    store: Store, source: EventSource
) -> None:
    kept = await store.record_event(order_event("o-3"), NOW)
    assert kept is not None
    assert kept.resumed == ()
    eid = await parked(store, HOOK, events=waits_for("o-3"))
    execution = await store.get_execution(eid)
    assert execution is not None
    assert execution.status is Status.RUNNING
    assert await left(store, eid) == NONE_LEFT


async def test_a_park_that_applies_an_early_call_registers_nothing(
    store: Store, source: EventSource
) -> None:
    execution = await store.create_execution(NewExecution("wf"), NOW)
    eid = execution.id
    assert await store.record_early_resume(eid, 1, "POST", "", {}, NOW, nonce=execution.nonce)
    webhook = dataclasses.replace(HOOK, approval=APPROVAL)
    outcome = await store.park(eid, None, webhook, NOW + 1, events=waits_for("o-4"))
    assert outcome
    assert outcome.early_resume_applied
    assert await left(store, eid) == NONE_LEFT
