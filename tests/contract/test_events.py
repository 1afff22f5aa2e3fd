"""The store's event verbs on every backend: sources, matching by index, fan-out exactly once,
dedup, lookback at park, and every transition that ends a wait ending its conditions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.domain import NewExecution, ResumedBy, Status, StopFilter, WebhookSpec
from gateway.errors import InvalidInput
from gateway.event_model import (
    CustomDataRef,
    EventCondition,
    EventQuery,
    EventSource,
    IncomingEvent,
)
from gateway.outbox_model import Event
from persistence.base import Store

NOW = 1_800_000_000_000
HOOK = WebhookSpec(methods=("POST",))
STRIPE = EventSource("stripe", {"type": "stripe", "secret": "whsec_x"}, event_id_path="id")
ORDER = "data.object.metadata.orderId"


def stripe_event(
    order: str, key: str | None = None, name: str = "payment_intent.succeeded"
) -> IncomingEvent:
    body = {"id": key, "type": name, "data": {"object": {"metadata": {"orderId": order}}}}
    return IncomingEvent("stripe", key, name, body, {"stripe-signature": "t=1,v1=x"})


def waits_for(order: str | CustomDataRef, name: str | None = None) -> tuple[EventCondition, ...]:
    return (EventCondition("stripe", name, ((ORDER, order),)),)


async def parked(store: Store, conditions: tuple[EventCondition, ...], **new: Any) -> int:
    execution = await store.create_execution(NewExecution("wf", **new), NOW)
    outcome = await store.park(execution.id, None, None, NOW, events=conditions)
    assert outcome
    return execution.id


async def status(store: Store, eid: int) -> Status:
    execution = await store.get_execution(eid)
    assert execution is not None
    return execution.status


@pytest.fixture
async def source(store: Store) -> EventSource:
    created = await store.create_event_source(STRIPE, NOW)
    assert created is not None
    return created


async def test_sources_are_named_once_and_scoped_by_project(store: Store) -> None:
    assert await store.create_event_source(EventSource("a", {"type": "none"}, "p1"), NOW)
    assert await store.create_event_source(EventSource("a", {"type": "none"}, "p2"), NOW) is None
    assert await store.create_event_source(EventSource("b", {"type": "none"}, "p2"), NOW)
    assert [s.name for s in await store.list_event_sources("p2")] == ["b"]
    assert [s.name for s in await store.list_event_sources(None)] == ["a", "b"]
    moved = EventSource("a", {"type": "none"}, "p2", lookback_seconds=5)
    assert await store.update_event_source(moved, NOW) is None  # not p2's
    changed = await store.update_event_source(
        EventSource("a", {"k": 1}, "p1", dedup_seconds=7), NOW
    )
    assert changed is not None
    assert (changed.verify, changed.dedup_seconds, changed.project_id) == ({"k": 1}, 7, "p1")
    assert not await store.delete_event_source("a", "p2")
    assert await store.delete_event_source("a", None)
    assert await store.get_event_source("a") is None


async def test_an_event_resumes_every_wait_it_matches_once(
    store: Store, source: EventSource
) -> None:
    hook = "http://127.0.0.1:9/callback"
    first = await parked(store, waits_for("o-1"), callback_url=hook)
    second = await parked(store, waits_for("o-1"))
    other = await parked(store, waits_for("o-2"))
    outcome = await store.record_event(stripe_event("o-1", "evt_1"), NOW + 1)
    assert outcome is not None
    assert sorted(outcome.resumed) == [(first, 1), (second, 1)]
    assert [await status(store, e) for e in (first, second, other)] == [
        Status.RUNNING,
        Status.RUNNING,
        Status.WAITING,
    ]
    execution = await store.get_execution(first, with_waits=True)
    assert execution is not None
    (wait,) = execution.waits
    assert wait.resumed_by is ResumedBy.EVENT
    assert wait.payload["eventId"] == "evt_1"
    assert wait.payload["body"]["data"]["object"]["metadata"]["orderId"] == "o-1"
    deliveries, _ = await store.execution_deliveries(first)
    assert [(d.event, d.payload["data"]["resumedBy"]) for d in deliveries] == [
        (Event.RESUMED, "event")
    ]
    again = await store.record_event(stripe_event("o-1", "evt_2"), NOW + 2)
    assert again is not None
    assert again.resumed == ()
    stored = await store.get_event(outcome.event_id)
    assert stored is not None
    assert stored.status == "matched"
    assert sorted(stored.resumed) == [(first, 1), (second, 1)]


async def test_every_key_must_match_and_the_name_if_given(
    store: Store, source: EventSource
) -> None:
    both = (EventCondition("stripe", None, ((ORDER, "o-1"), ("type", "charge.failed"))),)
    named = await parked(store, waits_for("o-1", name="charge.failed"))
    keyed = await parked(store, both)
    any_event = await parked(store, (EventCondition("stripe"),))
    outcome = await store.record_event(stripe_event("o-1", "e1"), NOW)
    assert outcome is not None
    assert outcome.resumed == ((any_event, 1),)  # the keyless condition names no event
    assert await status(store, named) is Status.WAITING
    outcome = await store.record_event(stripe_event("o-1", "e2", name="charge.failed"), NOW)
    assert outcome is not None
    assert sorted(outcome.resumed) == [(named, 1), (keyed, 1)]


async def test_a_redelivery_within_dedup_changes_nothing(store: Store, source: EventSource) -> None:
    outcome = await store.record_event(stripe_event("o-1", "evt_1"), NOW)
    assert outcome is not None
    eid = await parked(store, waits_for("o-1"))  # lookback applies the first delivery at once
    assert await status(store, eid) is Status.RUNNING
    later = await parked(store, waits_for("o-1"))
    duplicate = await store.record_event(stripe_event("o-1", "evt_1"), NOW + 1000)
    assert duplicate is not None
    assert duplicate.duplicate
    assert duplicate.resumed == ()
    assert await status(store, later) is Status.WAITING
    listed = await store.list_events(EventQuery(status="duplicate"))
    assert [e.duplicate_of for e in listed] == [outcome.event_id]
    past = await store.record_event(stripe_event("o-1", "evt_1"), NOW + 86_400_001)
    assert past is not None
    assert not past.duplicate
    assert past.resumed == ((later, 1),)


async def test_lookback_applies_the_oldest_kept_event_once(
    store: Store, source: EventSource
) -> None:
    older = await store.record_event(stripe_event("o-1", "e1"), NOW)
    newer = await store.record_event(stripe_event("o-1", "e2"), NOW + 1)
    assert older is not None
    assert newer is not None
    assert (older.resumed, newer.resumed) == ((), ())
    first = await parked(store, waits_for("o-1"))
    second = await parked(store, waits_for("o-1"))
    third = await parked(store, waits_for("o-1"))
    payloads = []
    for eid in (first, second):
        execution = await store.get_execution(eid, with_waits=True)
        assert execution is not None
        payloads.append(execution.waits[0].payload["eventId"])
    assert payloads == ["e1", "e2"]
    assert await status(store, third) is Status.WAITING
    stored = await store.get_event(older.event_id)
    assert stored is not None
    assert (stored.status, stored.resumed) == ("matched", ((first, 1),))


async def test_lookback_expires_and_zero_disables(store: Store, source: EventSource) -> None:
    await store.record_event(stripe_event("o-1", "e1"), NOW)
    execution = await store.create_execution(NewExecution("wf"), NOW)
    outcome = await store.park(execution.id, None, None, NOW + 3_600_001, events=waits_for("o-1"))
    assert outcome
    assert outcome.kept_event is None
    assert await status(store, execution.id) is Status.WAITING
    await store.create_event_source(EventSource("none", {"type": "none"}, lookback_seconds=0), NOW)
    await store.record_event(IncomingEvent("none", None, None, {"a": "1"}), NOW)
    waiting = await parked(store, (EventCondition("none", None, (("a", "1"),)),))
    assert await status(store, waiting) is Status.WAITING


async def test_a_path_first_used_after_the_event_still_finds_it(
    store: Store, source: EventSource
) -> None:
    await store.record_event(stripe_event("o-1", "e1"), NOW)
    eid = await parked(
        store, (EventCondition("stripe", None, (("data.object.metadata.orderId", "o-1"),)),)
    )
    assert await status(store, eid) is Status.RUNNING


async def test_custom_data_references_resolve_at_park(store: Store, source: EventSource) -> None:
    eid = await parked(store, waits_for(CustomDataRef("orderId")), custom_data={"orderId": "o-7"})
    execution = await store.get_execution(eid, with_waits=True)
    assert execution is not None
    assert execution.waits[0].events[0].values == {ORDER: "o-7"}
    outcome = await store.record_event(stripe_event("o-7", "e"), NOW)
    assert outcome is not None
    assert outcome.resumed == ((eid, 1),)
    missing = await store.create_execution(NewExecution("wf"), NOW)
    with pytest.raises(InvalidInput, match="orderId"):
        await store.park(missing.id, None, None, NOW, events=waits_for(CustomDataRef("orderId")))
    assert await status(store, missing.id) is Status.RUNNING  # the park rolled back


async def test_unknown_or_foreign_sources_refuse_the_park(
    store: Store, source: EventSource
) -> None:
    await store.create_event_source(EventSource("theirs", {"type": "none"}, "p2"), NOW)
    mine = await store.create_execution(NewExecution("wf", project_id="p1"), NOW)
    for name in ("nope", "theirs", "stripe"):
        with pytest.raises(InvalidInput, match="no event source"):
            await store.park(mine.id, None, None, NOW, events=(EventCondition(name),))
    assert await status(store, mine.id) is Status.RUNNING


async def test_a_body_that_did_not_parse_matches_nothing(store: Store, source: EventSource) -> None:
    eid = await parked(store, (EventCondition("stripe"),))
    event = IncomingEvent("stripe", None, None, None, body_text="not json")
    outcome = await store.record_event(event, NOW)
    assert outcome is not None
    assert outcome.resumed == ()
    assert await status(store, eid) is Status.WAITING
    stored = await store.get_event(outcome.event_id)
    assert stored is not None
    assert (stored.status, stored.body, stored.apply_until) == ("unmatched", "not json", None)


@pytest.mark.parametrize("ending", ["resume", "timeout", "stop", "stop_many", "early", "delete"])
async def test_every_end_of_a_wait_ends_its_conditions(
    store: Store, source: EventSource, ending: str
) -> None:
    execution = await store.create_execution(NewExecution("wf"), NOW)
    eid = execution.id
    if ending == "early":
        await store.record_early_resume(eid, 1, "POST", "", {}, NOW, nonce=execution.nonce)
    outcome = await store.park(eid, NOW + 10, HOOK, NOW, events=waits_for("o-1"))
    assert outcome
    if ending == "resume":
        assert await store.resume(eid, 1, ResumedBy.API, None, NOW)
    elif ending == "timeout":
        assert len(await store.claim_due(NOW + 10, 10)) == 1
    elif ending == "stop":
        assert await store.stop(eid, NOW)
    elif ending == "stop_many":
        assert await store.stop_many(StopFilter((Status.WAITING,)), NOW) == 1
    elif ending == "delete":
        assert await store.delete_execution(eid)
    else:
        assert outcome.early_resume_applied
    registered = 0 if ending == "early" else 1  # an early resume ends the wait before
    assert await store.prune_source_paths("stripe") == registered  # no open wait uses it now
    event = await store.record_event(stripe_event("o-1", "e"), NOW + 20)
    assert event is not None
    assert event.resumed == ()


async def test_concurrent_events_url_and_timer_resume_once(
    store: Store, source: EventSource
) -> None:
    for round_ in range(5):
        execution = await store.create_execution(NewExecution("wf"), NOW)
        eid = execution.id
        await store.park(eid, NOW + 5, HOOK, NOW, events=waits_for(f"o-{round_}"))
        results = await asyncio.gather(
            store.record_event(stripe_event(f"o-{round_}", f"a{round_}"), NOW + 5),
            store.record_event(stripe_event(f"o-{round_}", f"b{round_}"), NOW + 5),
            store.resume_by_call(eid, 1, "POST", "", {}, NOW + 5, nonce=execution.nonce),
            store.claim_due(NOW + 5, 10),
            store.resume(eid, 1, ResumedBy.API, None, NOW + 5),
        )
        event_a, event_b, call, due, api = results
        assert event_a is not None
        assert event_b is not None
        wins = [
            len(event_a.resumed),
            len(event_b.resumed),
            int(call.resumed),
            len(due),
            int(bool(api)),
        ]
        assert sum(wins) == 1, wins
        execution_now = await store.get_execution(eid, with_waits=True)
        assert execution_now is not None
        assert execution_now.status is Status.RUNNING


async def test_replay_and_prune(store: Store, source: EventSource) -> None:
    kept = await store.record_event(stripe_event("o-1", "e1"), NOW)
    assert kept is not None
    execution = await store.create_execution(NewExecution("wf"), NOW)
    await store.park(execution.id, None, None, NOW + 3_600_001, events=waits_for("o-1"))
    assert await status(store, execution.id) is Status.WAITING  # past the lookback
    replayed = await store.replay_event(kept.event_id, NOW + 3_600_002, None)
    assert replayed is not None
    assert replayed.resumed == ((execution.id, 1),)
    assert await store.replay_event(kept.event_id, NOW, "another project") is None
    assert await store.prune_events(NOW + 86_400_000, 100) == 0
    assert await store.prune_events(NOW + 86_400_001, 100) == 1
    assert await store.get_event(kept.event_id) is None
