"""A park answers with the execution and its waits as the park wrote them, without reading
them again unless something after the park changed them (PostgreSQL: one statement parks,
inserts the wait, takes the calls kept for it and reads the waits), on every backend."""

from __future__ import annotations

import asyncio
import dataclasses

from gateway.approvals import ApprovalSpec, Approver
from gateway.domain import Execution, NewExecution, ResumedBy, Status, Unchanged, WebhookSpec
from gateway.early import ParkOutcome
from gateway.trace_context import TraceContext
from persistence import open_store
from persistence.base import Store

NOW = 1_800_000_000_000
HOOK = WebhookSpec(methods=("POST",), suffix="done")
TRACE = TraceContext("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 1)
APPROVAL = ApprovalSpec("Deploy?", approvers=(Approver("a"),), reminders=(1_000,))


async def stored(store: Store, eid: int) -> Execution:
    execution = await store.get_execution(eid, with_waits=True)
    assert execution is not None
    return execution


async def test_the_answer_is_the_execution_as_stored(store: Store) -> None:
    new = NewExecution("wf", project_id="p", custom_data={"k": "v"}, data={"d": 1})
    eid = (await store.create_execution(new, NOW)).id
    first = await store.park(eid, None, HOOK, NOW)
    assert isinstance(first, ParkOutcome)
    assert first.execution == await stored(store, eid)
    assert [w.seq for w in first.execution.waits] == [1]
    assert await store.resume(eid, 1, ResumedBy.API, {"a": [1, "é"]}, NOW + 1)
    second = await store.park(eid, NOW + 60_000, HOOK, NOW + 2, trace=TRACE)
    assert isinstance(second, ParkOutcome)
    assert second.execution == await stored(store, eid)
    assert [w.seq for w in second.execution.waits] == [1, 2]
    assert second.execution.waits[0].payload == {"a": [1, "é"]}
    assert (second.execution.status, second.execution.wait_till) == (Status.WAITING, NOW + 60_000)
    assert await store.resume(eid, 2, ResumedBy.API, None, NOW + 3)
    approval = dataclasses.replace(HOOK, approval=APPROVAL)
    third = await store.park(eid, None, approval, NOW + 4)
    assert isinstance(third, ParkOutcome)
    assert third.execution == await stored(store, eid)
    assert third.execution.waits[-1].webhook == approval


async def test_a_discarded_early_call_leaves_the_answer_as_parked(store: Store) -> None:
    execution = await store.create_execution(NewExecution("wf"), NOW)
    eid = execution.id
    assert await store.record_early_resume(eid, 1, "GET", "", {}, NOW, nonce=execution.nonce)
    outcome = await store.park(eid, None, HOOK, NOW + 1)
    assert isinstance(outcome, ParkOutcome)
    assert outcome.early_resume_discarded
    assert not outcome.early_resume_applied
    assert outcome.execution == await stored(store, eid)
    assert outcome.execution.status is Status.WAITING
    again = await store.park(eid, None, HOOK, NOW + 2)  # parked already: nothing changes
    assert isinstance(again, Unchanged)
    assert again.execution == await stored(store, eid)


async def test_an_applied_early_call_answers_with_the_resumed_execution(store: Store) -> None:
    execution = await store.create_execution(NewExecution("wf"), NOW)
    eid = execution.id
    assert await store.record_early_resume(
        eid, 1, "POST", "done", {"e": 1}, NOW, nonce=execution.nonce
    )
    outcome = await store.park(eid, None, HOOK, NOW + 1)
    assert isinstance(outcome, ParkOutcome)
    assert outcome.early_resume_applied
    assert outcome.execution == await stored(store, eid)
    assert (outcome.execution.status, outcome.execution.wait_seq) == (Status.RUNNING, 2)
    assert outcome.execution.waits[0].payload == {"e": 1}


async def test_racing_parks_on_two_connections_park_once(store: Store, backend_url: str) -> None:
    second = open_store(backend_url)
    await second.open()
    try:
        ids = [(await store.create_execution(NewExecution("wf"), NOW)).id for _ in range(10)]
        outcomes = await asyncio.gather(
            *(s.park(eid, None, HOOK, NOW) for eid in ids for s in (store, second, store))
        )
    finally:
        await second.close()
    for i, eid in enumerate(ids):
        mine = outcomes[3 * i : 3 * i + 3]
        assert sum(isinstance(o, ParkOutcome) for o in mine) == 1
        execution = await stored(store, eid)
        assert [w.seq for w in execution.waits] == [1]
        for outcome in mine:
            assert outcome.execution is not None
            assert outcome.execution.status is Status.WAITING
