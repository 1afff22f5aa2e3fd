"""The SQLite backend of the ``Store``: executions, their waits, and the callback outbox.

Every transition is one conditional write; the outbox row that tells the engine about it is
written in the same transaction, so nothing acknowledged can be lost and nothing is announced
that did not happen.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

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
from persistence.sqlfiles import load_queries
from persistence.sqlite_catalog import SqliteCatalog
from persistence.sqlite_db import BUSY_TIMEOUT_MS, SqliteDatabase

Q = load_queries("sqlite")
T = TypeVar("T")


def _emit(
    conn: sqlite3.Connection,
    emitted: list[str],
    execution_id: int,
    event: Event,
    now: int,
    seq: int = 0,
) -> None:
    """Write the outbox row for ``event`` (the caller knows the execution has a callback URL)."""
    execution = rows.execution_from_row(
        conn.execute(Q["get_execution"], {"id": execution_id}).fetchone()
    )
    wait = None
    if event is Event.RESUMED:
        found = conn.execute(Q["get_wait"], {"id": execution_id, "seq": seq}).fetchone()
        wait = rows.wait_from_row(found)
    params = delivery_params(execution, event, now, wait)
    emitted.append(params["id"])
    conn.execute(Q["insert_delivery"], params)


def _resume(
    conn: sqlite3.Connection,
    emitted: list[str],
    execution_id: int,
    seq: int,
    resumed_by: ResumedBy,
    payload: str | None,
    now: int,
) -> bool:
    """The conditional resume plus its wait record and its outbox row."""
    key = {"id": execution_id, "seq": seq}
    resumed = conn.execute(Q["resume"], key).fetchone()
    if resumed is None:
        return False
    conn.execute(
        Q["mark_wait_resumed"],
        {**key, "now": now, "resumed_by": resumed_by.value, "payload": payload},
    )
    if resumed["callback_url"] is not None:
        _emit(conn, emitted, execution_id, Event.RESUMED, now, seq)
    return True


def _insert(conn: sqlite3.Connection, emitted: list[str], new: NewExecution, now: int) -> Execution:
    """Insert a running execution; a retry with a callback URL gets its outbox row."""
    row = conn.execute(Q["create_execution"], rows.new_execution_params(new, now)).fetchone()
    execution = rows.execution_from_row(row)
    if new.retry_of is not None and new.callback_url is not None:
        _emit(conn, emitted, execution.id, Event.RETRY, now)
    return execution


def _execution_with_waits(conn: sqlite3.Connection, execution_id: int) -> Execution | None:
    row = conn.execute(Q["get_execution"], {"id": execution_id}).fetchone()
    if row is None:
        return None
    found = conn.execute(Q["get_waits"], {"id": execution_id}).fetchall()
    return rows.execution_from_row(row, tuple(rows.wait_from_row(w) for w in found))


class SqliteStore(SqliteCatalog, Store):
    """A ``Store`` in one SQLite file."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = Path(path)
        self.db = SqliteDatabase(self.path, busy_timeout_ms=busy_timeout_ms)

    @classmethod
    def from_url(cls, url: str) -> SqliteStore:
        """``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``."""
        return cls(url.removeprefix("sqlite:///"))

    async def _transition(self, fn: Callable[[sqlite3.Connection, list[str]], T]) -> T:
        """A write transaction that may add outbox rows; listeners hear of them after commit."""
        emitted: list[str] = []
        result = await self.db.write(lambda conn: fn(conn, emitted))
        self._outbox_written(len(emitted))
        return result

    async def open(self) -> None:
        """Open the connections (creating the file and its folder)."""
        await self.db.open()

    async def close(self) -> None:
        """Close the connections."""
        await self.db.close()

    async def migrate(self) -> list[int]:
        """Apply pending migrations."""
        return await self.db.migrate()

    async def pending_migrations(self) -> list[int]:
        """Versions not yet applied."""
        return await self.db.pending_migrations()

    async def ping(self) -> None:
        """A trivial read."""
        await self.db.ping()

    # executions -----------------------------------------------------------------------

    async def create_execution(self, new: NewExecution, now: int) -> Execution:
        """Insert a running execution (announcing it to the engine if it is a retry)."""
        return await self._transition(lambda conn, emitted: _insert(conn, emitted, new, now))

    async def retry_execution(self, execution_id: int, now: int) -> Retried | None:
        """The retry of an execution; the single writer makes look-up and insert atomic."""

        def transaction(conn: sqlite3.Connection, emitted: list[str]) -> Retried | None:
            row = conn.execute(Q["get_execution"], {"id": execution_id}).fetchone()
            if row is None or Status(row["status"]) not in RETRYABLE:
                return None
            found = conn.execute(Q["find_retry"], {"id": execution_id}).fetchone()
            if found is not None:
                return Retried(rows.execution_from_row(found), created=False)
            new = rows.execution_from_row(row).retry()
            return Retried(_insert(conn, emitted, new, now), created=True)

        return await self._transition(transaction)

    async def get_execution(
        self, execution_id: int, *, with_waits: bool = False
    ) -> Execution | None:
        """One execution, optionally with its waits."""

        def read(conn: sqlite3.Connection) -> Execution | None:
            if with_waits:
                return _execution_with_waits(conn, execution_id)
            row = conn.execute(Q["get_execution"], {"id": execution_id}).fetchone()
            return None if row is None else rows.execution_from_row(row)

        return await self.db.read(read)

    async def get_wait(self, execution_id: int, seq: int) -> Wait | None:
        """One wait."""
        row = await self.db.read(
            lambda c: c.execute(Q["get_wait"], {"id": execution_id, "seq": seq}).fetchone()
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

        def transaction(conn: sqlite3.Connection, emitted: list[str]) -> ParkOutcome | None:
            parked = conn.execute(
                Q["park"], rows.park_params(execution_id, wait_till, webhook)
            ).fetchone()
            if parked is None:
                return None
            seq = parked["wait_seq"]
            key = {"id": execution_id, "seq": seq}
            conn.execute(
                Q["insert_wait"],
                {**key, "now": now, "wait_till": wait_till, "webhook": rows.dump_webhook(webhook)},
            )
            taken = conn.execute(Q["take_early_resume"], key).fetchone()
            early = None if taken is None else rows.early_resume_from_row(taken)
            applied, refusal = judge_early(early, webhook, admit_early, now)
            if applied:
                assert early is not None
                by = ResumedBy.WEBHOOK
                _resume(conn, emitted, execution_id, seq, by, early.payload, now)
            execution = _execution_with_waits(conn, execution_id)
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
        """Check the wait's webhook and resume it, in one transaction (one thread hop)."""
        dumped = rows.dump(payload)

        def transaction(conn: sqlite3.Connection, emitted: list[str]) -> CallOutcome:
            key = {"id": execution_id, "seq": seq, "nonce": nonce}
            found = conn.execute(Q["get_signed_wait"], key).fetchone()
            if found is None:
                return CallOutcome(None)
            wait = rows.wait_from_row(found)
            if not webhook_accepts(wait.webhook, method, suffix):
                return CallOutcome(wait)
            refusal = None if admit is None or wait.webhook is None else admit(wait.webhook)
            if refusal is not None:
                return CallOutcome(wait, accepted=True, refusal=refusal)
            by = ResumedBy.WEBHOOK
            resumed = _resume(conn, emitted, execution_id, seq, by, dumped, now)
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
        return await self.db.write(
            lambda c: c.execute(Q["record_early_resume"], params).rowcount == 1
        )

    async def claim_due(self, now: int, limit: int) -> list[TimedOut]:
        """Resume due waits by timeout, in one transaction."""
        payload = rows.dump({"resumedBy": ResumedBy.TIMEOUT.value})

        def transaction(conn: sqlite3.Connection, emitted: list[str]) -> list[TimedOut]:
            claimed = conn.execute(Q["claim_due"], {"now": now, "limit": limit}).fetchall()
            timed_out = []
            for row in claimed:
                key = {"id": row["id"], "seq": row["seq"], "now": now, "payload": payload}
                due = conn.execute(Q["mark_wait_timed_out"], key).fetchone()["wait_till"]
                timed_out.append(TimedOut(row["id"], row["seq"], now - due))
                if row["callback_url"] is not None:
                    _emit(conn, emitted, row["id"], Event.RESUMED, now, row["seq"])
            return timed_out

        return await self._transition(transaction)

    async def count_by_status(self) -> dict[str, int]:
        """Executions per status."""
        found = await self.db.read(lambda c: c.execute(Q["count_by_status"]).fetchall())
        return {r["status"]: r["n"] for r in found}

    async def count_overdue(self, now: int) -> int:
        """The timer's backlog."""
        row = await self.db.read(lambda c: c.execute(Q["count_overdue"], {"now": now}).fetchone())
        return int(row["n"])

    async def next_deadline(self) -> int | None:
        """The earliest deadline of any waiting execution."""
        row = await self.db.read(lambda c: c.execute(Q["next_deadline"]).fetchone())
        return None if row is None else row["deadline"]

    async def finish(
        self, execution_id: int, status: Status, result: JSON, error: JSON, now: int
    ) -> bool:
        """Finish a running execution; a successful retry marks its original."""
        params = rows.finish_params(execution_id, status, result, error, now)

        def transaction(conn: sqlite3.Connection) -> bool:
            if conn.execute(Q["finish"], params).rowcount != 1:
                return False
            conn.execute(Q["mark_retry_success"], {"id": execution_id})
            return True

        return await self.db.write(transaction)

    async def stop(self, execution_id: int, now: int, wait_seq: int | None = None) -> bool:
        """Cancel an execution that has not finished (still waiting at ``wait_seq``, if given)."""
        params = {"id": execution_id, "now": now, "wait_seq": wait_seq}

        def transaction(conn: sqlite3.Connection, emitted: list[str]) -> bool:
            stopped = conn.execute(Q["stop"], params).fetchone()
            if stopped is None:
                return False
            if stopped["callback_url"] is not None:
                _emit(conn, emitted, execution_id, Event.CANCELED, now)
            return True

        return await self._transition(transaction)

    async def stop_many(self, which: StopFilter, now: int) -> int:
        """Cancel every matching execution in one statement."""
        params = rows.stop_many_params(which, now)

        def transaction(conn: sqlite3.Connection, emitted: list[str]) -> int:
            stopped = conn.execute(Q["stop_many"], params).fetchall()
            for row in stopped:
                if row["callback_url"] is not None:
                    _emit(conn, emitted, row["id"], Event.CANCELED, now)
            return len(stopped)

        return await self._transition(transaction)

    async def set_custom_data(
        self, execution_id: int, values: dict[str, str], *, replace: bool
    ) -> dict[str, str] | None:
        """Merge or replace customData with one compare-and-set write."""

        def transaction(conn: sqlite3.Connection) -> dict[str, str] | None:
            row = conn.execute(Q["get_execution"], {"id": execution_id}).fetchone()
            if row is None:
                return None
            merged = dict(values) if replace else {**rows.load(row["custom_data"]), **values}
            check_custom_data_count(merged)
            params = {
                "id": execution_id,
                "custom_data": rows.dump(merged),
                "previous": row["custom_data"],
            }
            if conn.execute(Q["set_custom_data"], params).rowcount != 1:
                raise StoreError("customData changed during its own transaction")
            return merged

        return await self.db.write(transaction)

    async def delete_execution(self, execution_id: int) -> bool:
        """Delete an execution that is not running (its waits go with it)."""
        return await self.db.write(
            lambda c: c.execute(Q["delete_execution"], {"id": execution_id}).rowcount == 1
        )

    async def list_executions(self, query: ExecutionQuery) -> list[Execution]:
        """A page of executions, newest first."""
        sql, params = list_sql(query, "sqlite")
        found = await self.db.read(lambda c: c.execute(sql, params).fetchall())
        return [rows.execution_from_row(r) for r in found]

    # callback outbox ------------------------------------------------------------------

    async def claim_deliveries(self, now: int, limit: int, lease_ms: int) -> list[Delivery]:
        """Lease up to ``limit`` due deliveries so no other dispatcher sends them meanwhile."""
        params = {"now": now, "limit": limit, "lease_until": now + lease_ms}
        found = await self.db.write(lambda c: c.execute(Q["claim_deliveries"], params).fetchall())
        return [rows.delivery_from_row(r) for r in found]

    async def next_delivery_due(self) -> int | None:
        """When the earliest pending delivery is due."""
        row = await self.db.read(lambda c: c.execute(Q["next_delivery_due"]).fetchone())
        return None if row is None else row["due"]

    async def record_attempt(
        self, attempt: DeliveryAttempt, *, next_attempt_at: int | None, now: int
    ) -> None:
        """Record an attempt: delivered, retried at ``next_attempt_at``, or dead (``None``).

        A dead ``execution.resumed`` or ``execution.retry`` leaves the engine unaware of a
        running execution, so that execution becomes ``crashed`` with the reason as its error.
        """
        params = rows.attempt_outcome_params(attempt, next_attempt_at, now)

        def transaction(conn: sqlite3.Connection) -> None:
            conn.execute(Q["insert_attempt"], rows.attempt_params(attempt))
            if attempt.succeeded:
                conn.execute(Q["delivery_succeeded"], params)
            elif next_attempt_at is not None:
                conn.execute(Q["delivery_failed"], params)
            else:
                dead = conn.execute(Q["delivery_dead"], params).fetchone()
                if dead is not None and Event(dead["event"]) in CRASHES_ON_DEATH:
                    crash = rows.crash_params(dead["execution_id"], attempt, params["error"], now)
                    conn.execute(Q["crash_undelivered"], crash)

        await self.db.write(transaction)

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        """One delivery."""
        row = await self.db.read(
            lambda c: c.execute(Q["get_delivery"], {"id": delivery_id}).fetchone()
        )
        return None if row is None else rows.delivery_from_row(row)

    async def execution_deliveries(
        self, execution_id: int
    ) -> tuple[list[Delivery], list[DeliveryAttempt]]:
        """An execution's deliveries and every attempt made for them."""

        def read(conn: sqlite3.Connection) -> tuple[list[Delivery], list[DeliveryAttempt]]:
            key = {"id": execution_id}
            deliveries = [
                rows.delivery_from_row(r) for r in conn.execute(Q["execution_deliveries"], key)
            ]
            attempts = [
                rows.attempt_from_row(r) for r in conn.execute(Q["execution_attempts"], key)
            ]
            return deliveries, attempts

        return await self.db.read(read)

    async def redeliver(self, delivery_id: str, now: int) -> Delivery | None:
        """Send a dead or delivered callback again, with a fresh maximum age."""
        row = await self.db.write(
            lambda c: c.execute(Q["redeliver"], {"id": delivery_id, "now": now}).fetchone()
        )
        return None if row is None else rows.delivery_from_row(row)
