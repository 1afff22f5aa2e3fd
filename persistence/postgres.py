"""The PostgreSQL backend of the ``Store`` (asyncpg), for several replicas on one database.

The verbs mirror the SQLite backend's: every transition is one conditional write, its outbox row
is written in the same transaction, due waits and deliveries are claimed with
``FOR UPDATE SKIP LOCKED`` so each is taken by one replica. Replicas wake each other with
LISTEN/NOTIFY (deadlines, outbox rows, held answers); notifications only make things sooner.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from gateway.domain import (
    CRASHES_ON_DEATH,
    JSON,
    RETRYABLE,
    Admission,
    CallOutcome,
    Delivery,
    DeliveryAttempt,
    Event,
    Execution,
    ExecutionQuery,
    NewExecution,
    ResumedBy,
    Retried,
    Status,
    StopFilter,
    TimedOut,
    Wait,
    WebhookSpec,
    check_custom_data_count,
    webhook_accepts,
)
from gateway.early import CallEvidence, EarlyAdmission, ParkOutcome, judge_early
from gateway.errors import StoreError
from persistence import rows
from persistence.base import Store
from persistence.listing import list_sql
from persistence.outbox import delivery_params
from persistence.postgres_catalog import PostgresCatalog
from persistence.postgres_db import PgConnection, PostgresDatabase

T = TypeVar("T")


async def _emit(
    conn: PgConnection, emitted: list[str], execution_id: int, event: Event, now: int, seq: int = 0
) -> None:
    """Write the outbox row for ``event`` (the caller knows the execution has a callback URL)."""
    execution = rows.execution_from_row(await conn.one("get_execution", {"id": execution_id}))
    wait = None
    if event is Event.RESUMED:
        wait = rows.wait_from_row(await conn.one("get_wait", {"id": execution_id, "seq": seq}))
    params = delivery_params(execution, event, now, wait)
    emitted.append(params["id"])
    await conn.run("insert_delivery", params)


async def _insert(conn: PgConnection, emitted: list[str], new: NewExecution, now: int) -> Execution:
    """Insert a running execution; a retry with a callback URL gets its outbox row."""
    row = await conn.one("create_execution", rows.new_execution_params(new, now))
    execution = rows.execution_from_row(row)
    if new.retry_of is not None and new.callback_url is not None:
        await _emit(conn, emitted, execution.id, Event.RETRY, now)
    return execution


async def _resume(
    conn: PgConnection,
    emitted: list[str],
    execution_id: int,
    seq: int,
    resumed_by: ResumedBy,
    payload: str | None,
    now: int,
) -> bool:
    """The conditional resume plus its wait record and its outbox row."""
    key = {"id": execution_id, "seq": seq}
    resumed = await conn.row("resume", key)
    if resumed is None:
        return False
    marked = {**key, "now": now, "resumed_by": resumed_by.value, "payload": payload}
    await conn.run("mark_wait_resumed", marked)
    if resumed["callback_url"] is not None:
        await _emit(conn, emitted, execution_id, Event.RESUMED, now, seq)
    return True


async def _execution_with_waits(conn: PgConnection, execution_id: int) -> Execution | None:
    row = await conn.row("get_execution", {"id": execution_id})
    if row is None:
        return None
    found = await conn.rows("get_waits", {"id": execution_id})
    return rows.execution_from_row(row, tuple(rows.wait_from_row(w) for w in found))


class PostgresStore(PostgresCatalog, Store):
    """A ``Store`` in one PostgreSQL database, shared by any number of gateway replicas."""

    def __init__(self, dsn: str, *, min_connections: int = 2, max_connections: int = 10) -> None:
        self.db = PostgresDatabase(
            dsn, min_connections=min_connections, max_connections=max_connections
        )

    @classmethod
    def from_url(cls, url: str) -> PostgresStore:
        """``postgresql://user@host:port/database``."""
        return cls(url)

    async def _transition(self, fn: Callable[[PgConnection, list[str]], Awaitable[T]]) -> T:
        """A transaction that may add outbox rows; replicas are notified on commit."""
        emitted: list[str] = []

        async def work(conn: PgConnection) -> T:
            result = await fn(conn, emitted)
            if emitted:
                await conn.notify("outbox", "")
            return result

        result = await self.db.transaction(work)
        self._outbox_written(len(emitted))
        return result

    async def open(self) -> None:
        """Connect the pool and the listener that hears other replicas."""
        await self.db.open(self._heard)

    def _heard(self, channel: str, payload: str) -> None:
        if channel == "outbox":
            self._outbox_written(1)
        elif channel == "deadline" and payload.isdigit():
            self._deadline_parked(int(payload))
        elif channel == "held":
            execution_id, _, seq = payload.partition(":")
            if execution_id.isdigit() and seq.isdigit():
                self._held_answer_stored(int(execution_id), int(seq))

    async def close(self) -> None:
        """Close the pool and the listener."""
        await self.db.close()

    async def migrate(self) -> list[int]:
        """Apply pending migrations under an advisory lock (replicas may start together)."""
        return await self.db.migrate()

    async def pending_migrations(self) -> list[int]:
        """Versions not yet applied."""
        return await self.db.pending_migrations()

    async def ping(self) -> None:
        """A trivial query."""
        await self.db.read(lambda conn: conn.row("database_time", {}))

    async def database_time(self) -> int:
        """The database server's clock, in ms since the epoch."""
        row = await self.db.read(lambda conn: conn.row("database_time", {}))
        assert row is not None
        return int(row["now"])

    # executions -----------------------------------------------------------------------

    async def create_execution(self, new: NewExecution, now: int) -> Execution:
        """Insert a running execution (announcing it to the engine if it is a retry)."""
        return await self._transition(lambda conn, emitted: _insert(conn, emitted, new, now))

    async def retry_execution(self, execution_id: int, now: int) -> Retried | None:
        """The retry of an execution; its row lock makes concurrent retries queue."""

        async def transaction(conn: PgConnection, emitted: list[str]) -> Retried | None:
            row = await conn.row("get_execution_for_update", {"id": execution_id})
            if row is None or Status(row["status"]) not in RETRYABLE:
                return None
            found = await conn.row("find_retry", {"id": execution_id})
            if found is not None:
                return Retried(rows.execution_from_row(found), created=False)
            new = rows.execution_from_row(row).retry()
            return Retried(await _insert(conn, emitted, new, now), created=True)

        return await self._transition(transaction)

    async def get_execution(
        self, execution_id: int, *, with_waits: bool = False
    ) -> Execution | None:
        """One execution, optionally with its waits."""

        async def read(conn: PgConnection) -> Execution | None:
            if with_waits:
                return await _execution_with_waits(conn, execution_id)
            row = await conn.row("get_execution", {"id": execution_id})
            return None if row is None else rows.execution_from_row(row)

        return await self.db.read(read)

    async def get_wait(self, execution_id: int, seq: int) -> Wait | None:
        """One wait."""
        row = await self.db.read(
            lambda conn: conn.row("get_wait", {"id": execution_id, "seq": seq})
        )
        return None if row is None else rows.wait_from_row(row)

    async def park(
        self,
        execution_id: int,
        wait_till: int | None,
        webhook: WebhookSpec | None,
        now: int,
        admit_early: EarlyAdmission | None = None,
    ) -> ParkOutcome | None:
        """Park a running execution, applying an early resume kept for this wait if the wait
        takes it and its caller checks admit it."""

        async def transaction(conn: PgConnection, emitted: list[str]) -> ParkOutcome | None:
            parked = await conn.row("park", rows.park_params(execution_id, wait_till, webhook))
            if parked is None:
                return None
            seq = parked["wait_seq"]
            key = {"id": execution_id, "seq": seq}
            wait_params = {
                "now": now,
                "wait_till": wait_till,
                "webhook": rows.dump_webhook(webhook),
            }
            await conn.run("insert_wait", {**key, **wait_params})
            if wait_till is not None:
                await conn.notify("deadline", str(wait_till))
            taken = await conn.row("take_early_resume", key)
            early = None if taken is None else rows.early_resume_from_row(taken)
            applied, refusal = judge_early(early, webhook, admit_early, now)
            if applied:
                assert early is not None
                by = ResumedBy.WEBHOOK
                await _resume(conn, emitted, execution_id, seq, by, early.payload, now)
            execution = await _execution_with_waits(conn, execution_id)
            assert execution is not None
            return ParkOutcome(
                execution,
                early_resume_applied=applied,
                early_resume_discarded=early is not None and not applied,
                early=early,
                early_refusal=refusal,
            )

        return await self._transition(transaction)

    async def resume(
        self, execution_id: int, seq: int, resumed_by: ResumedBy, payload: JSON, now: int
    ) -> bool:
        """The conditional resume; ``False`` for the loser of a race."""
        dumped = rows.dump(payload)
        return await self._transition(
            lambda conn, emitted: _resume(conn, emitted, execution_id, seq, resumed_by, dumped, now)
        )

    async def resume_by_call(
        self,
        execution_id: int,
        seq: int,
        method: str,
        suffix: str,
        payload: JSON,
        now: int,
        admit: Admission | None = None,
        *,
        nonce: str,
    ) -> CallOutcome:
        """Check the wait's webhook and resume it, in one transaction."""
        dumped = rows.dump(payload)

        async def transaction(conn: PgConnection, emitted: list[str]) -> CallOutcome:
            key = {"id": execution_id, "seq": seq, "nonce": nonce}
            found = await conn.row("get_signed_wait", key)
            if found is None:
                return CallOutcome(None)
            wait = rows.wait_from_row(found)
            if not webhook_accepts(wait.webhook, method, suffix):
                return CallOutcome(wait)
            refusal = None if admit is None or wait.webhook is None else admit(wait.webhook)
            if refusal is not None:
                return CallOutcome(wait, accepted=True, refusal=refusal)
            by = ResumedBy.WEBHOOK
            resumed = await _resume(conn, emitted, execution_id, seq, by, dumped, now)
            return CallOutcome(wait, accepted=True, resumed=resumed)

        return await self._transition(transaction)

    async def record_early_resume(
        self,
        execution_id: int,
        seq: int,
        method: str,
        suffix: str,
        payload: JSON,
        now: int,
        evidence: CallEvidence | None = None,
        *,
        nonce: str,
    ) -> bool:
        """Keep a resume for a wait that is not parked yet, with what its checks need."""
        params = {
            "id": execution_id,
            "seq": seq,
            "nonce": nonce,
            "method": method,
            "suffix": suffix,
            "payload": rows.dump(payload),
            "now": now,
            "caller": rows.dump_evidence(evidence),
        }
        return await self.db.transaction(
            lambda conn: conn.run_counted("record_early_resume", params)
        )

    async def claim_due(self, now: int, limit: int) -> list[TimedOut]:
        """Resume due waits by timeout; each replica skips the rows another has locked."""
        payload = rows.dump({"resumedBy": ResumedBy.TIMEOUT.value})

        async def transaction(conn: PgConnection, emitted: list[str]) -> list[TimedOut]:
            claimed = await conn.rows("claim_due", {"now": now, "limit": limit})
            timed_out = []
            for row in claimed:
                key = {"id": row["id"], "seq": row["seq"], "now": now, "payload": payload}
                due = (await conn.one("mark_wait_timed_out", key))["wait_till"]
                timed_out.append(TimedOut(row["id"], row["seq"], now - due))
                if row["callback_url"] is not None:
                    await _emit(conn, emitted, row["id"], Event.RESUMED, now, row["seq"])
            return timed_out

        return await self._transition(transaction)

    async def count_by_status(self) -> dict[str, int]:
        """Executions per status."""
        found = await self.db.read(lambda conn: conn.rows("count_by_status", {}))
        return {r["status"]: int(r["n"]) for r in found}

    async def count_overdue(self, now: int) -> int:
        """The timer's backlog."""
        row = await self.db.read(lambda conn: conn.one("count_overdue", {"now": now}))
        return int(row["n"])

    async def next_deadline(self) -> int | None:
        """The earliest deadline of any waiting execution."""
        row = await self.db.read(lambda conn: conn.row("next_deadline", {}))
        return None if row is None or row["deadline"] is None else int(row["deadline"])

    async def finish(
        self, execution_id: int, status: Status, result: JSON, error: JSON, now: int
    ) -> bool:
        """Finish a running execution; a successful retry marks its original."""
        params = rows.finish_params(execution_id, status, result, error, now)

        async def transaction(conn: PgConnection) -> bool:
            if not await conn.run_counted("finish", params):
                return False
            await conn.run("mark_retry_success", {"id": execution_id})
            return True

        return await self.db.transaction(transaction)

    async def stop(self, execution_id: int, now: int, wait_seq: int | None = None) -> bool:
        """Cancel an execution that has not finished (still waiting at ``wait_seq``, if given)."""
        params = {"id": execution_id, "now": now, "wait_seq": wait_seq}

        async def transaction(conn: PgConnection, emitted: list[str]) -> bool:
            stopped = await conn.row("stop", params)
            if stopped is None:
                return False
            if stopped["callback_url"] is not None:
                await _emit(conn, emitted, execution_id, Event.CANCELED, now)
            return True

        return await self._transition(transaction)

    async def stop_many(self, which: StopFilter, now: int) -> int:
        """Cancel every matching execution in one statement."""
        params = rows.stop_many_params(which, now)
        params["statuses"] = [s.value for s in which.statuses]

        async def transaction(conn: PgConnection, emitted: list[str]) -> int:
            stopped = await conn.rows("stop_many", params)
            for row in stopped:
                if row["callback_url"] is not None:
                    await _emit(conn, emitted, row["id"], Event.CANCELED, now)
            return len(stopped)

        return await self._transition(transaction)

    async def set_custom_data(
        self, execution_id: int, values: dict[str, str], *, replace: bool
    ) -> dict[str, str] | None:
        """Merge or replace customData with one compare-and-set write."""

        async def transaction(conn: PgConnection) -> dict[str, str] | None:
            row = await conn.row("get_execution_for_update", {"id": execution_id})
            if row is None:
                return None
            merged = dict(values) if replace else {**rows.load(row["custom_data"]), **values}
            check_custom_data_count(merged)
            params = {
                "id": execution_id,
                "custom_data": rows.dump(merged),
                "previous": row["custom_data"],
            }
            if not await conn.run_counted("set_custom_data", params):
                raise StoreError("customData changed during its own transaction")
            return merged

        return await self.db.transaction(transaction)

    async def delete_execution(self, execution_id: int) -> bool:
        """Delete an execution that is not running (its waits go with it)."""
        return await self.db.transaction(
            lambda conn: conn.run_counted("delete_execution", {"id": execution_id})
        )

    async def list_executions(self, query: ExecutionQuery) -> list[Execution]:
        """A page of executions, newest first."""
        sql, params = list_sql(query, "postgres")
        found = await self.db.read(lambda conn: conn.query(sql, params))
        return [rows.execution_from_row(r) for r in found]

    # callback outbox ------------------------------------------------------------------

    async def claim_deliveries(self, now: int, limit: int, lease_ms: int) -> list[Delivery]:
        """Lease due deliveries; replicas skip the rows another has locked."""
        params = {"now": now, "limit": limit, "lease_until": now + lease_ms}
        found = await self.db.transaction(lambda conn: conn.rows("claim_deliveries", params))
        return [rows.delivery_from_row(r) for r in found]

    async def next_delivery_due(self) -> int | None:
        """When the earliest pending delivery is due."""
        row = await self.db.read(lambda conn: conn.row("next_delivery_due", {}))
        return None if row is None or row["due"] is None else int(row["due"])

    async def record_attempt(
        self, attempt: DeliveryAttempt, *, next_attempt_at: int | None, now: int
    ) -> None:
        """Record an attempt: delivered, retried at ``next_attempt_at``, or dead (``None``)."""
        params = rows.attempt_outcome_params(attempt, next_attempt_at, now)

        async def transaction(conn: PgConnection) -> None:
            await conn.run("insert_attempt", rows.attempt_params(attempt))
            if attempt.succeeded:
                await conn.run("delivery_succeeded", params)
            elif next_attempt_at is not None:
                await conn.run("delivery_failed", params)
            else:
                dead = await conn.row("delivery_dead", params)
                if dead is not None and Event(dead["event"]) in CRASHES_ON_DEATH:
                    crash = rows.crash_params(dead["execution_id"], attempt, params["error"], now)
                    await conn.run("crash_undelivered", crash)

        await self.db.transaction(transaction)

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        """One delivery."""
        row = await self.db.read(lambda conn: conn.row("get_delivery", {"id": delivery_id}))
        return None if row is None else rows.delivery_from_row(row)

    async def execution_deliveries(
        self, execution_id: int
    ) -> tuple[list[Delivery], list[DeliveryAttempt]]:
        """An execution's deliveries and every attempt made for them."""

        async def read(conn: PgConnection) -> tuple[list[Delivery], list[DeliveryAttempt]]:
            key = {"id": execution_id}
            deliveries = [
                rows.delivery_from_row(r) for r in await conn.rows("execution_deliveries", key)
            ]
            attempts = [
                rows.attempt_from_row(r) for r in await conn.rows("execution_attempts", key)
            ]
            return deliveries, attempts

        return await self.db.read(read)

    async def redeliver(self, delivery_id: str, now: int) -> Delivery | None:
        """Send a dead or delivered callback again, with a fresh maximum age."""

        async def transaction(conn: PgConnection) -> dict[str, Any] | None:
            row = await conn.row("redeliver", {"id": delivery_id, "now": now})
            if row is not None:
                await conn.notify("outbox", "")
            return row

        row = await self.db.transaction(transaction)
        return None if row is None else rows.delivery_from_row(row)
