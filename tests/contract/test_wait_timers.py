"""Reminders and escalations in the store, on every backend: each timer fires once however
claims race, the scheduler's next deadline includes them, and whatever ends a wait drops them."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter

from gateway.approvals import ApprovalSpec, Approver, Decided, Decision, Escalation
from gateway.domain import NewExecution, ResumedBy, Status, StopFilter, WebhookSpec
from persistence.base import Store

NOW = 1_800_000_000_000
SPEC = ApprovalSpec(
    "Deploy?",
    approvers=(Approver("a"), Approver("b")),
    required=2,
    on_timeout="resume",
    reminders=(1_000, 2_000),
    escalation=Escalation(3_000, (Approver("c"),)),
)


def no_timer(deadline: int | None) -> bool:
    """No timer left: no deadline, or only the far one of a wait without ``waitTill``."""
    return deadline is None or deadline > NOW + 86_400_000


async def parked(store: Store, spec: ApprovalSpec = SPEC) -> int:
    eid = (await store.create_execution(NewExecution("wf"), NOW)).id
    assert await store.park(eid, None, WebhookSpec(methods=("POST",), approval=spec), NOW)
    return eid


async def test_the_next_deadline_is_the_first_timer(store: Store) -> None:
    await parked(store)
    assert await store.next_deadline() == NOW + 1_000
    assert await store.claim_timers(NOW + 999, 10) == []


async def test_racing_claims_fire_each_timer_once(store: Store) -> None:
    ids = [await parked(store) for _ in range(4)]
    claims = await asyncio.gather(*(store.claim_timers(NOW + 3_000, 100) for _ in range(4)))
    fired = Counter((t.execution_id, t.kind, t.n) for claim in claims for t in claim)
    expected = {(i, k, n) for i in ids for k, n in (("reminder", 1), ("reminder", 2))}
    expected |= {(i, "escalation", 1) for i in ids}
    assert set(fired) == expected
    assert set(fired.values()) == {1}
    assert await store.claim_timers(NOW + 10_000, 100) == []
    assert no_timer(await store.next_deadline())


async def test_a_reminder_names_the_undecided_and_escalation_adds_approvers(store: Store) -> None:
    eid = await parked(store)
    assert isinstance(await store.decide(eid, 1, SPEC, Decision("a", "approve", at=NOW)), Decided)
    (first,) = await store.claim_timers(NOW + 1_000, 10)
    assert (first.kind, first.approvers) == ("reminder", ("b",))
    _, escalation = await store.claim_timers(NOW + 3_000, 10)
    assert (escalation.kind, escalation.approvers) == ("escalation", ("c",))
    wait = await store.get_wait(eid, 1)
    assert wait is not None
    assert wait.webhook is not None
    assert wait.webhook.approval is not None
    grown = wait.webhook.approval
    assert [a.id for a in grown.approvers] == ["a", "b", "c"]
    assert grown.escalation is None
    decided = await store.decide(eid, 1, SPEC, Decision("c", "approve", at=NOW + 4_000))
    assert isinstance(decided, Decided)
    assert decided.ended == "approved"


async def test_every_way_a_wait_ends_drops_its_timers(store: Store) -> None:
    one_approver = dataclasses.replace(SPEC, required=1)
    decided = await parked(store, one_approver)
    await store.decide(decided, 1, one_approver, Decision("a", "approve", at=NOW))
    resumed = await parked(store)
    await store.resume(resumed, 1, ResumedBy.API, None, NOW)
    stopped = await parked(store)
    await store.stop(stopped, NOW)
    many = await parked(store)
    await store.stop_many(StopFilter(statuses=(Status.WAITING,)), NOW)
    assert no_timer(await store.next_deadline())
    assert await store.claim_timers(NOW + 10_000, 100) == []
    assert many


async def test_a_park_with_reminders_wakes_the_scheduler_at_the_first(store: Store) -> None:
    heard: list[int] = []
    store.on_deadline(heard.append)
    await parked(store)
    assert set(heard) == {NOW + 1_000}  # PostgreSQL also hears its own NOTIFY
