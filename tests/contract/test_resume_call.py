"""A call of a resume URL (``resume_by_call``) on every backend: exactly once however calls race
on separate connections, nothing for a wait that is not the waiting one, and the callback it
writes from what it read is the one a resume that reads it again writes. PostgreSQL makes the
whole resume one statement (``resume_call``) run alone: its refusals, the customData it
requires, and its NOTIFY are tested here too."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import pytest

from gateway.domain import (
    CallOutcome,
    NewExecution,
    Refusal,
    ResumedBy,
    Status,
    WebhookSpec,
)
from gateway.trace_context import TraceContext
from persistence import open_store, rows
from persistence import script as q
from persistence.base import Store
from persistence.outbox import resumed_payload
from persistence.postgres import CHANNEL_PREFIX
from persistence.script import WakeKind
from persistence.sqlfiles import load_queries

NOW = 1_800_000_000_000
HOOK = WebhookSpec(methods=("POST",))
ENGINE = "https://engine.example/hook"
WAIT_TRACE = TraceContext("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 1, "k=v")
CREATE_TRACE = TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1)


async def parked(store: Store, **new: Any) -> tuple[int, str]:
    execution = await store.create_execution(NewExecution("wf", **new), NOW)
    assert await store.park(execution.id, None, HOOK, NOW)
    return execution.id, execution.nonce


async def call(
    store: Store, eid: int, nonce: str, seq: int = 1, payload: Any = None, **kw: Any
) -> CallOutcome:
    body = {"n": 1} if payload is None else payload
    return await store.resume_by_call(eid, seq, "POST", "", body, NOW + 5, nonce=nonce, **kw)


async def raw_deliveries(store: Store, eid: int) -> list[dict[str, Any]]:
    """The execution's outbox rows as stored (the payload as its text)."""

    def text(_dialect: str) -> str:
        return (
            "SELECT event, target_url, payload, endpoint, trace_parent, trace_state, status "
            "FROM deliveries WHERE execution_id = :id ORDER BY created_at, id"
        )

    found = await store.db.read(q.rows("raw_deliveries", {"id": eid}, text))
    return [dict(r) for r in found]


async def test_racing_calls_on_two_connections_resume_once_with_one_callback(
    store: Store, backend_url: str
) -> None:
    second = open_store(backend_url)
    await second.open()
    try:
        waits = [await parked(store, callback_url=ENGINE) for _ in range(10)]
        attempts = [
            call(s, eid, nonce, payload={"by": n})
            for eid, nonce in waits
            for n, s in enumerate((store, second, store, second))
        ]
        outcomes = await asyncio.gather(*attempts)
    finally:
        await second.close()
    for i, (eid, _) in enumerate(waits):
        mine = outcomes[4 * i : 4 * i + 4]
        (won,) = [n for n, o in enumerate(mine) if o.resumed]
        for lost in (o for o in mine if not o.resumed):
            assert lost.accepted
            assert lost.execution is not None
            assert (lost.execution.status, lost.execution.wait_seq) == (Status.RUNNING, 2)
        execution = await store.get_execution(eid, with_waits=True)
        assert execution is not None
        assert (execution.status, execution.wait_seq) == (Status.RUNNING, 2)
        assert execution.waits[0].payload == {"by": won}
        (delivery,) = await raw_deliveries(store, eid)
        assert rows.load(delivery["payload"])["data"]["payload"] == {"by": won}


async def test_a_call_for_a_wait_that_is_not_the_waiting_one_changes_nothing(
    store: Store,
) -> None:
    eid, nonce = await parked(store, callback_url=ENGINE)
    assert (await call(store, eid, nonce)).resumed
    again = await call(store, eid, nonce)  # already resumed
    assert (again.accepted, again.resumed) == (True, False)
    assert again.execution is not None
    assert (again.execution.status, again.execution.wait_seq) == (Status.RUNNING, 2)
    assert await store.park(eid, None, HOOK, NOW + 10)
    stale = await call(store, eid, nonce, seq=1)  # an earlier wait: the wrong seq
    assert (stale.accepted, stale.resumed) == (True, False)
    assert stale.execution is not None
    assert (stale.execution.status, stale.execution.wait_seq) == (Status.WAITING, 2)
    assert (await call(store, eid, nonce, seq=3)).wait is None  # not parked yet
    assert await store.stop(eid, NOW + 20)
    stopped = await call(store, eid, nonce, seq=2)
    assert (stopped.accepted, stopped.resumed) == (True, False)
    assert stopped.execution is not None
    assert stopped.execution.status is Status.CANCELED
    execution = await store.get_execution(eid, with_waits=True)
    assert execution is not None
    assert [w.resumed_by for w in execution.waits] == [ResumedBy.WEBHOOK, None]
    assert [d["event"] for d in await raw_deliveries(store, eid)] == [
        "execution.resumed",
        "execution.canceled",
    ]


async def test_a_refused_call_writes_nothing(store: Store) -> None:
    eid, nonce = await parked(store, callback_url=ENGINE)
    refused = await call(store, eid, nonce, admit=lambda _spec: Refusal(401, "no"))
    assert refused.refusal is not None
    assert not refused.resumed
    wrong = await store.resume_by_call(eid, 1, "GET", "", {}, NOW + 5, nonce=nonce)
    assert (wrong.wait is not None, wrong.accepted) == (True, False)
    execution = await store.get_execution(eid)
    assert execution is not None
    assert execution.status is Status.WAITING
    assert await raw_deliveries(store, eid) == []


async def test_the_callback_a_call_writes_is_the_one_a_resume_reading_again_writes(
    store: Store,
) -> None:
    new = NewExecution("wf", project_id="p", callback_url=ENGINE, custom_data={"k": "v"})
    traced = await store.create_execution(new, NOW, CREATE_TRACE)
    assert await store.park(traced.id, NOW + 60_000, HOOK, NOW, trace=WAIT_TRACE)
    plain, plain_nonce = await parked(store, callback_url=ENGINE)
    with_create_trace = await store.create_execution(new, NOW, CREATE_TRACE)
    assert await store.park(with_create_trace.id, None, HOOK, NOW)
    cases = [
        (traced.id, traced.nonce, WAIT_TRACE),
        (plain, plain_nonce, None),
        (with_create_trace.id, with_create_trace.nonce, CREATE_TRACE),
    ]
    for eid, nonce, trace in cases:
        assert (await call(store, eid, nonce, payload={"x": [1, 2.5, "é"]})).resumed
        execution = await store.get_execution(eid, with_waits=True)
        assert execution is not None
        (delivery,) = await raw_deliveries(store, eid)
        expected = resumed_payload(execution, execution.waits[0], NOW + 5)
        assert delivery["payload"] == rows.dump(expected)
        assert delivery["target_url"] == ENGINE
        assert delivery["status"] == "pending"
        assert delivery["endpoint"]
        traceparent = None if trace is None else trace.traceparent
        tracestate = None if trace is None else trace.state
        assert (delivery["trace_parent"], delivery["trace_state"]) == (traceparent, tracestate)


def _apart(work: Any) -> None:
    """Run a coroutine on its own loop in another thread, to its end (while ours is busy)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, work()).result()


async def test_postgres_a_customdata_change_between_read_and_write_is_announced(
    store: Store, backend_url: str
) -> None:
    if not backend_url.startswith("postgres"):
        pytest.skip("SQLite's single writer: nothing changes between the read and the write")
    eid, nonce = await parked(store, callback_url=ENGINE, custom_data={"k": "before"})

    async def change() -> None:
        conn = await asyncpg.connect(backend_url)
        try:
            update = "UPDATE executions SET custom_data = $1 WHERE id = $2"
            await conn.execute(update, rows.dump({"k": "after"}), eid)
        finally:
            await conn.close()

    def admit(_spec: WebhookSpec) -> None:
        _apart(change)  # the call has read the wait (and customData) and not written yet

    assert (await call(store, eid, nonce, admit=admit)).resumed
    (delivery,) = await raw_deliveries(store, eid)
    assert rows.load(delivery["payload"])["data"]["customData"] == {"k": "after"}
    execution = await store.get_execution(eid, with_waits=True)
    assert execution is not None
    assert execution.status is Status.RUNNING
    assert execution.waits[0].resumed_by is ResumedBy.WEBHOOK


async def test_postgres_the_one_statement_resume_wakes_every_replica(
    store: Store, backend_url: str
) -> None:
    if not backend_url.startswith("postgres"):
        pytest.skip("one process: no other replica to wake")
    assert (
        f"pg_notify('{CHANNEL_PREFIX}{WakeKind.OUTBOX.value}'"
        in (load_queries("postgres")["resume_call"])
    )
    eid, nonce = await parked(store, callback_url=ENGINE)
    here: list[bool] = []
    store.on_outbox(lambda: here.append(True))
    second = open_store(backend_url)
    heard = asyncio.Event()
    second.on_outbox(heard.set)
    await second.open()
    try:
        await asyncio.wait_for(heard.wait(), 10)  # its listener's first catch-up
        heard.clear()
        assert (await call(store, eid, nonce)).resumed
        assert here  # this replica's listeners, at once
        await asyncio.wait_for(heard.wait(), 10)
    finally:
        await second.close()


async def test_a_call_without_a_callback_writes_none(store: Store) -> None:
    eid, nonce = await parked(store)
    assert (await call(store, eid, nonce)).resumed
    assert await raw_deliveries(store, eid) == []


@pytest.mark.parametrize("callback_url", [None, ENGINE])
async def test_sqlite_a_call_reads_its_wait_once_and_writes_without_reading_back(
    store: Store, backend_url: str, monkeypatch: pytest.MonkeyPatch, callback_url: str | None
) -> None:
    if not backend_url.startswith("sqlite"):
        pytest.skip("PostgreSQL resumes in one statement (resume_call)")
    import persistence.sqlite as driver

    ran: list[str] = []
    execute = driver._execute

    def recording(conn: Any, statement: q.Statement) -> Any:
        ran.append(statement[0])
        return execute(conn, statement)

    eid, nonce = await parked(store, callback_url=callback_url)
    monkeypatch.setattr(driver, "_execute", recording)
    assert (await call(store, eid, nonce)).resumed
    writes = ["resume_seen", "mark_wait_resumed"]
    if callback_url is not None:
        writes.append("insert_delivery")  # made from the row get_signed_wait read
    assert [name for name in ran if name != "dialect"] == ["get_signed_wait", *writes]
    monkeypatch.setattr(driver, "_execute", execute)
    assert len(await raw_deliveries(store, eid)) == (callback_url is not None)
