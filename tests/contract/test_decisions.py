"""Decisions of approvers in the store, on every backend: one row per approver and wait, and
exactly one resume however decisions, the timer and a URL call race."""

from __future__ import annotations

import asyncio
import dataclasses

from gateway.approvals import ApprovalSpec, Approver, Decided, Decision
from gateway.domain import NewExecution, ResumedBy, Status, Unchanged, WebhookSpec
from persistence.base import Store

NOW = 1_800_000_000_000
SPEC = ApprovalSpec(
    "Deploy?",
    approvers=tuple(Approver(i) for i in ("a", "b", "c")),
    required=2,
    on_timeout="resume",
)


async def parked(store: Store, spec: ApprovalSpec = SPEC, wait_till: int | None = None) -> int:
    eid = (await store.create_execution(NewExecution("wf"), NOW)).id
    hook = WebhookSpec(methods=("POST",), approval=spec)
    assert await store.park(eid, wait_till, hook, NOW)
    return eid


def by(approver: str, decision: str = "approve") -> Decision:
    return Decision(approver, "approve" if decision == "approve" else "reject", at=NOW + 1)


async def test_the_spec_and_decisions_round_trip(store: Store) -> None:
    spec = dataclasses.replace(SPEC, branch={"approve": "go"}, requester="c", required=1)
    eid = await parked(store, spec)
    execution = await store.get_execution(eid, with_waits=True)
    assert execution is not None
    assert execution.waits[0].webhook is not None
    assert execution.waits[0].webhook.approval == spec
    made = Decision("a", "approve", ("approve",), "ok", NOW, "api")
    first = await store.decide(eid, 1, spec, made)
    assert isinstance(first, Decided)
    assert first.ended == "approved"
    assert first.decisions == (made,)
    assert await store.execution_decisions(eid) == [(1, first.decisions[0])]
    (wait,) = first.execution.waits
    assert wait.resumed_by is ResumedBy.APPROVAL
    assert wait.payload["branch"] == "go"


async def test_a_second_decision_of_one_approver_writes_nothing(store: Store) -> None:
    eid = await parked(store)
    assert await store.decide(eid, 1, SPEC, by("a"))
    again = await store.decide(eid, 1, SPEC, by("a", "reject"))
    assert isinstance(again, Decided)
    assert again.duplicate
    assert [d.decision for d in again.decisions] == ["approve"]


async def test_concurrent_decisions_meet_the_rule_once(store: Store) -> None:
    for _ in range(5):
        eid = await parked(store)
        outcomes = await asyncio.gather(*(store.decide(eid, 1, SPEC, by(a)) for a in "abc"))
        decided = [o for o in outcomes if isinstance(o, Decided)]
        assert [o.ended for o in decided].count("approved") == 1
        assert len(decided) in {2, 3}
        assert all(isinstance(o, Decided | Unchanged) for o in outcomes)
        execution = await store.get_execution(eid, with_waits=True)
        assert execution is not None
        assert execution.status is Status.RUNNING
        assert len(execution.waits[0].payload["decisions"]) == 2


async def test_decisions_race_the_timer_and_a_url_call(store: Store) -> None:
    for _ in range(5):
        eid = await parked(store, wait_till=NOW)
        await store.decide(eid, 1, SPEC, by("a"))
        outcomes = await asyncio.gather(
            store.decide(eid, 1, SPEC, by("b")),
            store.claim_due(NOW + 10, 10),
            store.resume(eid, 1, ResumedBy.API, {"x": 1}, NOW + 10),
        )
        ended = [outcomes[0] and outcomes[0].ended, outcomes[1], outcomes[2]]
        assert sum(bool(e) for e in ended) == 1, outcomes
        execution = await store.get_execution(eid, with_waits=True)
        assert execution is not None
        assert execution.status is Status.RUNNING
        assert execution.waits[0].resumed_at is not None


async def test_the_timer_cancels_an_approval_whose_on_timeout_cancels(store: Store) -> None:
    eid = await parked(store, dataclasses.replace(SPEC, on_timeout="cancel"), wait_till=NOW)
    other = await parked(store, dataclasses.replace(SPEC, on_timeout="approve"), wait_till=NOW)
    plain = (await store.create_execution(NewExecution("wf"), NOW)).id
    assert await store.park(plain, NOW, None, NOW)
    timed_out = sorted(await store.claim_due(NOW + 5, 10))
    assert [(t.execution_id, t.seq) for t in timed_out] == [(eid, 1), (other, 1), (plain, 1)]
    canceled = await store.get_execution(eid, with_waits=True)
    assert canceled is not None
    assert canceled.status is Status.CANCELED
    assert canceled.stopped_at == NOW + 5
    assert canceled.wait_seq == 1
    approved = await store.get_execution(other, with_waits=True)
    assert approved is not None
    assert approved.waits[0].payload["approved"] is True
    assert approved.waits[0].payload["timedOut"] is True
    untouched = await store.get_execution(plain, with_waits=True)
    assert untouched is not None
    assert untouched.waits[0].payload == {"resumedBy": "timeout"}
