"""The SQLite store's transitions: each one conditional, the loser learns it from the row count."""

from __future__ import annotations

import asyncio

import pytest

from gateway.domain import (
    FOREVER_MS,
    AttemptOutcome,
    AuditPair,
    ExecutionQuery,
    NewExecution,
    ResumeAttempt,
    ResumedBy,
    Status,
    StopFilter,
    Unchanged,
    WebhookSpec,
)
from gateway.early import MAX_KEPT, SUPERSEDED
from gateway.errors import InvalidInput
from gateway.stored import AUDIT_ROWS_KEPT
from persistence import open_store
from persistence.base import Store

NOW = 1_800_000_000_000
HOOK = WebhookSpec(methods=("POST",), suffix="")


async def running(store: Store) -> int:
    return (await store.create_execution(NewExecution("wf"), NOW)).id


async def test_create_starts_running_at_wait_one(store: Store) -> None:
    execution = await store.create_execution(
        NewExecution("wf", mode="manual", custom_data={"k": "v"}, data={"x": 1}), NOW
    )
    assert execution.status is Status.RUNNING
    assert execution.wait_seq == 1
    assert execution.started_at == NOW
    assert execution.custom_data == {"k": "v"}
    assert execution.data == {"x": 1}


async def test_park_then_resume_once(store: Store) -> None:
    eid = await running(store)
    outcome = await store.park(eid, NOW + 1000, HOOK, NOW)
    assert outcome
    assert outcome.execution.status is Status.WAITING
    assert outcome.execution.wait_till == NOW + 1000
    assert await store.resume(eid, 1, ResumedBy.WEBHOOK, {"a": 1}, NOW + 5)
    assert not await store.resume(eid, 1, ResumedBy.WEBHOOK, {"a": 2}, NOW + 6)
    execution = await store.get_execution(eid, with_waits=True)
    assert execution is not None
    assert execution.status is Status.RUNNING
    assert execution.wait_seq == 2
    (wait,) = execution.waits
    assert (wait.resumed_at, wait.resumed_by, wait.payload) == (
        NOW + 5,
        ResumedBy.WEBHOOK,
        {"a": 1},
    )


async def test_webhook_wait_without_limit_reports_year_3000(store: Store) -> None:
    eid = await running(store)
    outcome = await store.park(eid, None, HOOK, NOW)
    assert outcome
    assert outcome.execution.wait_till == FOREVER_MS
    assert outcome.execution.waits[0].wait_till is None
    assert await store.claim_due(NOW + 10**12, 10) == []


async def test_only_running_executions_park(store: Store) -> None:
    eid = await running(store)
    assert await store.park(eid, NOW, None, NOW)
    assert isinstance(await store.park(eid, NOW, None, NOW), Unchanged)
    assert isinstance(await store.park(999, NOW, None, NOW), Unchanged)


async def test_resume_names_the_wait(store: Store) -> None:
    eid = await running(store)
    await store.park(eid, None, HOOK, NOW)
    assert await store.resume(eid, 1, ResumedBy.API, None, NOW)
    await store.park(eid, None, HOOK, NOW)
    assert not await store.resume(eid, 1, ResumedBy.WEBHOOK, None, NOW)  # an earlier wait
    assert await store.resume(eid, 2, ResumedBy.WEBHOOK, None, NOW)


async def test_claim_due_takes_only_due_waits_in_deadline_order_and_batches(store: Store) -> None:
    ids = [await running(store) for _ in range(5)]
    for offset, eid in zip([30, 10, 20, 999, 40], ids, strict=True):
        await store.park(eid, NOW + offset, None, NOW)
    assert await store.next_deadline() == NOW + 10
    first = await store.claim_due(NOW + 40, 2)
    assert sorted(first) == sorted([(ids[1], 1, 30), (ids[2], 1, 20)])  # the two earliest
    second = await store.claim_due(NOW + 40, 10)
    assert sorted(second) == sorted([(ids[0], 1, 10), (ids[4], 1, 0)])  # late by 10 and 0 ms
    assert await store.claim_due(NOW + 40, 10) == []
    assert await store.next_deadline() == NOW + 999
    execution = await store.get_execution(ids[1], with_waits=True)
    assert execution is not None
    assert execution.waits[0].resumed_by is ResumedBy.TIMEOUT
    assert execution.waits[0].resumed_at == NOW + 40


async def test_timeout_and_webhook_race_has_one_winner(store: Store) -> None:
    eid = await running(store)
    await store.park(eid, NOW, HOOK, NOW)
    claimed, resumed = await asyncio.gather(
        store.claim_due(NOW, 10), store.resume(eid, 1, ResumedBy.WEBHOOK, None, NOW)
    )
    assert (len(claimed) == 1) != bool(resumed)


async def test_two_stores_on_one_database_resume_exactly_once(
    store: Store, backend_url: str
) -> None:
    second = open_store(backend_url)
    await second.open()
    try:
        assert await second.migrate() == []
        ids = [(await store.create_execution(NewExecution("wf"), NOW)).id for _ in range(20)]
        for eid in ids:
            await store.park(eid, None, HOOK, NOW)
        attempts = [
            s.resume(eid, 1, ResumedBy.WEBHOOK, None, NOW)
            for eid in ids
            for s in (store, second, store, second)
        ]
        results = await asyncio.gather(*attempts)
        assert sum(bool(r) for r in results) == len(ids)
    finally:
        await second.close()


async def test_two_stores_claim_each_due_wait_once(store: Store, backend_url: str) -> None:
    second = open_store(backend_url)
    await second.open()
    try:
        for _ in range(30):
            eid = (await store.create_execution(NewExecution("wf"), NOW)).id
            await store.park(eid, NOW, None, NOW)
        batches = await asyncio.gather(
            *(s.claim_due(NOW, 4) for _ in range(5) for s in (store, second))
        )
        claimed = [(t.execution_id, t.seq) for batch in batches for t in batch]
        claimed += [(t.execution_id, t.seq) for t in await store.claim_due(NOW, 100)]
        assert len(claimed) == len(set(claimed)) == 30
    finally:
        await second.close()


async def test_early_resume_is_applied_when_its_wait_is_parked(store: Store) -> None:
    execution = await store.create_execution(NewExecution("wf"), NOW)
    eid, nonce = execution.id, execution.nonce
    assert await store.record_early_resume(eid, 1, "POST", "", {"early": True}, NOW, nonce=nonce)
    for n in range(2, MAX_KEPT + 1):  # a few more are kept; the oldest is applied
        assert await store.record_early_resume(eid, 1, "POST", "", {"n": n}, NOW, nonce=nonce)
    assert not await store.record_early_resume(eid, 1, "POST", "", {}, NOW, nonce=nonce)
    assert not await store.record_early_resume(eid, 2, "POST", "", {}, NOW, nonce=nonce)
    outcome = await store.park(eid, NOW + 10_000, HOOK, NOW + 1)
    assert outcome
    assert outcome.early_resume_applied
    assert [r for _, r in outcome.refused_early] == [SUPERSEDED] * (MAX_KEPT - 1)
    assert outcome.execution.status is Status.RUNNING
    assert outcome.execution.waits[0].payload == {"early": True}
    assert outcome.execution.waits[0].resumed_by is ResumedBy.WEBHOOK
    assert await store.claim_due(NOW + 20_000, 10) == []


async def test_early_resume_for_another_method_is_discarded(store: Store) -> None:
    execution = await store.create_execution(NewExecution("wf"), NOW)
    eid = execution.id
    assert await store.record_early_resume(eid, 1, "GET", "", {}, NOW, nonce=execution.nonce)
    outcome = await store.park(eid, None, HOOK, NOW)
    assert outcome
    assert outcome.early_resume_discarded
    assert outcome.execution.status is Status.WAITING


async def test_a_call_resumes_only_the_execution_with_its_nonce(store: Store) -> None:
    execution = await store.create_execution(NewExecution("wf"), NOW)
    eid, nonce, other = execution.id, execution.nonce, "0" * 32
    assert len(nonce) == 32
    assert nonce != other
    assert not await store.record_early_resume(eid, 1, "POST", "", {}, NOW, nonce=other)
    assert not await store.record_early_resume(eid, 1, "POST", "", {}, NOW, nonce="")
    assert await store.park(eid, None, HOOK, NOW)
    refused = await store.resume_by_call(eid, 1, "POST", "", {}, NOW, nonce=other)
    assert (refused.wait, refused.resumed) == (None, False)
    resumed = await store.resume_by_call(eid, 1, "POST", "", {}, NOW, nonce=nonce)
    assert resumed.resumed


async def test_finish_only_from_running_and_retry_success_marks_original(store: Store) -> None:
    eid = await running(store)
    assert await store.finish(eid, Status.ERROR, None, {"message": "boom"}, NOW)
    assert not await store.finish(eid, Status.SUCCESS, None, None, NOW)
    retry = await store.create_execution(NewExecution("wf", mode="retry", retry_of=eid), NOW)
    assert await store.finish(retry.id, Status.SUCCESS, {"ok": 1}, None, NOW + 1)
    original = await store.get_execution(eid)
    assert original is not None
    assert original.retry_success_id == retry.id
    assert original.error == {"message": "boom"}


async def test_stop_ends_the_wait_for_good(store: Store) -> None:
    eid = await running(store)
    await store.park(eid, NOW + 5, HOOK, NOW)
    assert await store.stop(eid, NOW + 1)
    assert not await store.stop(eid, NOW + 2)
    assert await store.claim_due(NOW + 10, 10) == []
    assert not await store.resume(eid, 1, ResumedBy.WEBHOOK, None, NOW + 3)
    execution = await store.get_execution(eid)
    assert execution is not None
    assert (execution.status, execution.stopped_at) == (Status.CANCELED, NOW + 1)


async def test_a_wait_bound_stop_cancels_only_that_wait(store: Store) -> None:
    eid = await running(store)
    assert not await store.stop(eid, NOW, wait_seq=1)  # running, not waiting
    await store.park(eid, None, HOOK, NOW)
    assert await store.resume(eid, 1, ResumedBy.API, None, NOW)
    await store.park(eid, None, HOOK, NOW)
    assert not await store.stop(eid, NOW + 1, wait_seq=1)  # that wait has ended
    execution = await store.get_execution(eid)
    assert execution is not None
    assert (execution.status, execution.wait_seq) == (Status.WAITING, 2)
    assert await store.stop(eid, NOW + 2, wait_seq=2)
    execution = await store.get_execution(eid)
    assert execution is not None
    assert (execution.status, execution.stopped_at) == (Status.CANCELED, NOW + 2)


async def test_stop_many_filters(store: Store) -> None:
    a = await running(store)
    b = (await store.create_execution(NewExecution("other"), NOW)).id
    c = await running(store)
    await store.park(c, None, HOOK, NOW)
    stopped = await store.stop_many(StopFilter(statuses=(Status.WAITING,), workflow_id="wf"), NOW)
    assert stopped == 1
    assert await store.stop_many(StopFilter(statuses=(Status.RUNNING,)), NOW) == 2
    for eid in (a, b, c):
        execution = await store.get_execution(eid)
        assert execution is not None
        assert execution.status is Status.CANCELED


async def test_custom_data_set_and_set_all_enforce_the_count(store: Store) -> None:
    eid = await running(store)
    assert await store.set_custom_data(eid, {"a": "1"}, replace=False) == {"a": "1"}
    assert await store.set_custom_data(eid, {"b": "2"}, replace=False) == {"a": "1", "b": "2"}
    assert await store.set_custom_data(eid, {"c": "3"}, replace=True) == {"c": "3"}
    many = {f"k{i}": "v" for i in range(10)}
    with pytest.raises(InvalidInput, match="at most 10"):
        await store.set_custom_data(eid, many, replace=False)
    assert await store.set_custom_data(999, {"a": "1"}, replace=False) is None
    execution = await store.get_execution(eid)
    assert execution is not None
    assert execution.custom_data == {"c": "3"}


async def test_delete_refuses_running_and_cascades(store: Store) -> None:
    eid = await running(store)
    assert not await store.delete_execution(eid)
    await store.park(eid, None, HOOK, NOW)
    assert await store.delete_execution(eid)
    assert await store.get_execution(eid) is None
    assert await store.get_wait(eid, 1) is None


async def test_migrate_is_idempotent_and_reports_nothing_pending(store: Store) -> None:
    assert await store.migrate() == []
    assert await store.pending_migrations() == []


async def test_only_one_first_api_key_even_from_two_replicas(
    store: Store, backend_url: str
) -> None:
    second = open_store(backend_url)
    await second.open()
    try:
        created = await asyncio.gather(
            *(
                s.create_first_api_key(f"admin {i}", f"hash{i}", "wg_x", ("admin",), NOW)
                for i, s in enumerate([store, second, store, second])
            )
        )
        assert sum(c is not None for c in created) == 1
        assert len(await store.list_api_keys()) == 1
        assert await store.create_first_api_key("late", "hash9", "wg_y", ("admin",), NOW) is None
    finally:
        await second.close()


async def test_prune_deletes_only_old_or_surplus_finished_executions(store: Store) -> None:
    day = 86_400_000
    old_done = await running(store)
    await store.finish(old_done, Status.SUCCESS, None, None, NOW - 20 * day)
    old_waiting = await running(store)
    await store.park(old_waiting, None, HOOK, NOW - 20 * day)
    old_running = await running(store)
    recent = []
    for _ in range(4):
        eid = await running(store)
        await store.stop(eid, NOW - day)
        recent.append(eid)
    cutoff = NOW - 14 * day
    keep_ten, keep_two = await store.prune_floor(10), await store.prune_floor(2)
    assert keep_ten == 0  # five finished: none is past the newest ten
    assert await store.prune(cutoff, keep_ten, batch=100) == 1  # only the old finished one
    assert await store.get_execution(old_done) is None
    assert await store.prune(cutoff, keep_two, batch=1) == 1  # beyond the newest two, in batches
    assert await store.prune(cutoff, keep_two, batch=1) == 1
    assert await store.prune(cutoff, keep_two, batch=1) == 0
    kept = [e for e in recent if await store.get_execution(e) is not None]
    assert kept == recent[-2:]
    for untouchable in (old_waiting, old_running):
        assert await store.get_execution(untouchable) is not None


async def test_resume_attempts_are_kept_per_execution_and_go_with_it(store: Store) -> None:
    eid = await running(store)
    await store.park(eid, None, HOOK, NOW)
    attempts = [
        ResumeAttempt(eid, 1, NOW, "POST", 401, "refused", "bad signature", "10.0.0.1", "curl"),
        ResumeAttempt(eid, 1, NOW + 1, "POST", 200, "accepted", "resumed", "10.0.0.2", None),
        ResumeAttempt(999, 1, NOW, "GET", 404, "refused", "no such execution"),
    ]
    await store.record_resume_attempts(attempts)
    assert await store.resume_attempts(eid) == attempts[:2]
    assert await store.resume_attempts(999) == []
    await store.resume(eid, 1, ResumedBy.API, None, NOW)
    await store.stop(eid, NOW)
    assert await store.delete_execution(eid)
    assert await store.resume_attempts(eid) == []


async def test_a_batch_of_attempts_is_kept_in_order_with_its_text_as_sent(store: Store) -> None:
    """One write of many attempts (one statement) keeps them in the order given, each text
    exactly, whatever it holds that JSON must escape."""
    eid = await running(store)
    texts = ['quote " and \\ backslash', "tab\there", "latin-1 caf\u00e9 \u00ff", "\u2603 {}[],:"]
    batch = [
        ResumeAttempt(eid, 1, NOW + n, "POST", 401, "refused", text, "10.0.0.1", text)
        for n, text in enumerate(texts * 10)
    ]
    await store.record_resume_attempts(batch)
    assert await store.resume_attempts(eid) == batch


async def test_one_trim_cuts_each_pair_it_names_back_to_its_newest_rows(store: Store) -> None:
    """A trim of several (execution, outcome) pairs, one of them named twice, keeps the
    ``AUDIT_ROWS_KEPT`` newest rows of each pair it names and leaves every other pair whole."""
    first, second = await running(store), await running(store)
    over = AUDIT_ROWS_KEPT + 3
    kinds: list[tuple[int, AttemptOutcome]] = [(200, "accepted"), (401, "refused")]
    written = [
        ResumeAttempt(eid, 1, NOW + n, "POST", status, outcome, f"{outcome} {n}")
        for n in range(over)
        for eid in (first, second)
        for status, outcome in kinds
    ]
    trim: list[AuditPair] = [(first, "refused"), (second, "accepted"), (first, "refused")]
    await store.record_resume_attempts(written, trim=trim)
    for eid in (first, second):
        kept = await store.resume_attempts(eid)
        for outcome in ("accepted", "refused"):
            rows = [a for a in kept if a.outcome == outcome]
            expected = [a for a in written if a.execution_id == eid and a.outcome == outcome]
            if (eid, outcome) in trim:
                expected = expected[-AUDIT_ROWS_KEPT:]
            assert rows == expected, (eid, outcome)


async def test_a_listed_page_with_waits_is_each_execution_as_read_alone(store: Store) -> None:
    twice = await running(store)
    await store.park(twice, NOW + 5, HOOK, NOW)
    await store.resume(twice, 1, ResumedBy.API, {"n": 1}, NOW + 1)
    await store.park(twice, None, HOOK, NOW + 2)
    never = await running(store)
    once = await running(store)
    await store.park(once, None, HOOK, NOW)
    query = ExecutionQuery(include_running=True)

    listed = await store.list_executions(query, with_waits=True)
    alone = [await store.get_execution(e.id, with_waits=True) for e in listed]
    assert [e.id for e in listed] == [once, never, twice]
    assert listed == alone
    assert [len(e.waits) for e in listed] == [1, 0, 2]
    assert all(e.waits == () for e in await store.list_executions(query))


async def test_a_floor_read_before_more_executions_finish_deletes_no_more(store: Store) -> None:
    """A retention run reads its floor once: executions that finish during the run only raise
    the floor, so the one it read deletes no more than a fresh one would."""
    first = [await running(store) for _ in range(3)]
    for eid in first:
        await store.stop(eid, NOW)
    floor = await store.prune_floor(2)
    assert floor == first[0]
    later = [await running(store) for _ in range(3)]
    for eid in later:
        await store.stop(eid, NOW)
    assert await store.prune_floor(2) == later[0]  # what a fresh read says now
    assert await store.prune(NOW - 1, floor, batch=100) == 1
    left = [e for e in first + later if await store.get_execution(e) is not None]
    assert left == first[1:] + later
