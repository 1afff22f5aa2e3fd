"""The SQLite backend: WAL, one writer connection, a few reader connections.

Each transaction runs as one synchronous function on its connection's aiosqlite thread, so a
cancelled request can never leave a transaction half-done and a resume costs one thread hop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from gateway.domain import (
    JSON,
    ApiKey,
    Execution,
    ExecutionQuery,
    NewExecution,
    ParkOutcome,
    ResumedBy,
    Status,
    StopFilter,
    Tag,
    Wait,
    WebhookSpec,
    check_custom_data_count,
    reported_wait_till,
)
from gateway.errors import StoreError, StoreUnavailable
from persistence import rows
from persistence.base import Store
from persistence.sqlfiles import load_migrations, load_queries

T = TypeVar("T")
Q = load_queries("sqlite")
READERS = 4
BUSY_TIMEOUT_MS = 5000


def _configure(conn: sqlite3.Connection, *, writer: bool, busy_timeout_ms: int) -> None:
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA foreign_keys = ON")
    if writer:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
    else:
        conn.execute("PRAGMA query_only = ON")


def _translate(exc: sqlite3.Error) -> StoreError:
    text = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError) and any(
        word in text for word in ("locked", "busy", "readonly", "disk", "unable to open", "full")
    ):
        return StoreUnavailable(f"database unavailable: {exc}")
    return StoreError(f"database error: {exc}")


class SqliteStore(Store):
    """A ``Store`` in one SQLite file."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._writer: aiosqlite.Connection | None = None
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all_readers: list[aiosqlite.Connection] = []
        self._write_lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str) -> SqliteStore:
        """``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``."""
        return cls(url.removeprefix("sqlite:///"))

    async def open(self) -> None:
        """Open the writer (creating the file and folder) and the readers."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = await aiosqlite.connect(self.path, isolation_level=None)
            await self._call(
                self._writer,
                lambda c: _configure(c, writer=True, busy_timeout_ms=self._busy_timeout_ms),
            )
            for _ in range(READERS):
                reader = await aiosqlite.connect(self.path, isolation_level=None)
                await self._call(
                    reader,
                    lambda c: _configure(c, writer=False, busy_timeout_ms=self._busy_timeout_ms),
                )
                self._all_readers.append(reader)
                self._readers.put_nowait(reader)
        except sqlite3.Error as exc:
            await self.close()
            raise _translate(exc) from exc

    async def close(self) -> None:
        """Close every connection."""
        for conn in [*self._all_readers, self._writer]:
            if conn is not None:
                await conn.close()
        self._all_readers.clear()
        self._readers = asyncio.Queue()
        self._writer = None

    @staticmethod
    async def _call(conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        # aiosqlite runs ``fn`` on the connection's own thread, as it does for its own methods.
        def run() -> T:
            return fn(conn._conn)

        try:
            return await asyncio.shield(conn._execute(run))  # type: ignore[no-untyped-call]
        except sqlite3.Error as exc:
            raise _translate(exc) from exc

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` as one ``BEGIN IMMEDIATE`` … ``COMMIT`` transaction on the writer."""
        if self._writer is None:
            raise StoreUnavailable("store is not open")

        def transaction(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        async with self._write_lock:
            return await self._call(self._writer, transaction)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        reader = await self._readers.get()
        try:
            return await self._call(reader, fn)
        finally:
            self._readers.put_nowait(reader)

    # migrations -----------------------------------------------------------------------

    async def migrate(self) -> list[int]:
        """Apply pending migrations, each in its own transaction."""
        applied: list[int] = []
        for migration in load_migrations("sqlite"):

            def apply(
                conn: sqlite3.Connection, version: int = migration.version, sql: str = migration.sql
            ) -> bool:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations "
                    "(version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"
                )
                done = conn.execute(
                    "SELECT 1 FROM schema_migrations WHERE version = ?", (version,)
                ).fetchone()
                if done:
                    return False
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, time.time_ns() // 1_000_000),
                )
                return True

            if await self._write(apply):
                applied.append(migration.version)
        return applied

    async def pending_migrations(self) -> list[int]:
        """Versions not yet applied."""

        def read(conn: sqlite3.Connection) -> set[int]:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
            ).fetchone()
            if not exists:
                return set()
            return {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}

        done = await self._read(read)
        return [m.version for m in load_migrations("sqlite") if m.version not in done]

    async def ping(self) -> None:
        """A trivial read."""
        await self._read(lambda c: c.execute("SELECT 1").fetchone())

    # executions -----------------------------------------------------------------------

    async def create_execution(self, new: NewExecution, now: int) -> Execution:
        """Insert a running execution."""
        params = {
            "workflow_id": new.workflow_id,
            "project_id": new.project_id,
            "mode": new.mode,
            "retry_of": new.retry_of,
            "custom_data": rows.dump(new.custom_data),
            "data": rows.dump(new.data),
            "now": now,
        }
        row = await self._write(lambda c: c.execute(Q["create_execution"], params).fetchone())
        return rows.execution_from_row(row)

    async def get_execution(
        self, execution_id: int, *, with_waits: bool = False
    ) -> Execution | None:
        """One execution, optionally with its waits."""

        def read(conn: sqlite3.Connection) -> Execution | None:
            row = conn.execute(Q["get_execution"], {"id": execution_id}).fetchone()
            if row is None:
                return None
            waits: tuple[Wait, ...] = ()
            if with_waits:
                found = conn.execute(Q["get_waits"], {"id": execution_id}).fetchall()
                waits = tuple(rows.wait_from_row(w) for w in found)
            return rows.execution_from_row(row, waits)

        return await self._read(read)

    async def get_wait(self, execution_id: int, seq: int) -> Wait | None:
        """One wait."""
        row = await self._read(
            lambda c: c.execute(Q["get_wait"], {"id": execution_id, "seq": seq}).fetchone()
        )
        return None if row is None else rows.wait_from_row(row)

    async def park(
        self, execution_id: int, wait_till: int | None, webhook: WebhookSpec | None, now: int
    ) -> ParkOutcome | None:
        """Park a running execution, applying an early resume if one waits for this wait."""

        def transaction(conn: sqlite3.Connection) -> tuple[bool, bool] | None:
            parked = conn.execute(
                Q["park"],
                {
                    "id": execution_id,
                    "reported_wait_till": reported_wait_till(wait_till, webhook),
                    "wait_suffix": None if webhook is None else webhook.suffix,
                },
            ).fetchone()
            if parked is None:
                return None
            seq = parked["wait_seq"]
            key = {"id": execution_id, "seq": seq}
            conn.execute(
                Q["insert_wait"],
                {**key, "now": now, "wait_till": wait_till, "webhook": rows.dump_webhook(webhook)},
            )
            early = conn.execute(Q["take_early_resume"], key).fetchone()
            if early is None:
                return False, False
            if (
                webhook is None
                or early["method"] not in webhook.methods
                or early["suffix"] != webhook.suffix
            ):
                return False, True
            conn.execute(Q["resume"], key)
            conn.execute(
                Q["mark_wait_resumed"],
                {
                    **key,
                    "now": now,
                    "resumed_by": ResumedBy.WEBHOOK.value,
                    "payload": early["payload"],
                },
            )
            return True, False

        outcome = await self._write(transaction)
        if outcome is None:
            return None
        execution = await self.get_execution(execution_id, with_waits=True)
        if execution is None:  # deleted in between; nothing more to report
            return None
        return ParkOutcome(
            execution, early_resume_applied=outcome[0], early_resume_discarded=outcome[1]
        )

    async def resume(
        self, execution_id: int, seq: int, resumed_by: ResumedBy, payload: JSON, now: int
    ) -> bool:
        """The conditional resume; ``False`` for the loser of a race."""
        key = {"id": execution_id, "seq": seq}
        marked = {**key, "now": now, "resumed_by": resumed_by.value, "payload": rows.dump(payload)}

        def transaction(conn: sqlite3.Connection) -> bool:
            if conn.execute(Q["resume"], key).rowcount != 1:
                return False
            conn.execute(Q["mark_wait_resumed"], marked)
            return True

        return await self._write(transaction)

    async def record_early_resume(
        self, execution_id: int, seq: int, method: str, suffix: str, payload: JSON, now: int
    ) -> bool:
        """Keep a resume for a wait that is not parked yet."""
        params = {
            "id": execution_id,
            "seq": seq,
            "method": method,
            "suffix": suffix,
            "payload": rows.dump(payload),
            "now": now,
        }
        return await self._write(
            lambda c: c.execute(Q["record_early_resume"], params).rowcount == 1
        )

    async def claim_due(self, now: int, limit: int) -> list[tuple[int, int]]:
        """Resume due waits by timeout, in one transaction."""

        def transaction(conn: sqlite3.Connection) -> list[tuple[int, int]]:
            claimed = [
                (r["id"], r["seq"])
                for r in conn.execute(Q["claim_due"], {"now": now, "limit": limit})
            ]
            payload = rows.dump({"resumedBy": ResumedBy.TIMEOUT.value})
            conn.executemany(
                Q["mark_wait_resumed"],
                [
                    {
                        "id": i,
                        "seq": s,
                        "now": now,
                        "resumed_by": ResumedBy.TIMEOUT.value,
                        "payload": payload,
                    }
                    for i, s in claimed
                ],
            )
            return claimed

        return await self._write(transaction)

    async def next_deadline(self) -> int | None:
        """The earliest deadline of any waiting execution."""
        row = await self._read(lambda c: c.execute(Q["next_deadline"]).fetchone())
        return None if row is None else row["deadline"]

    async def finish(
        self, execution_id: int, status: Status, result: JSON, error: JSON, now: int
    ) -> bool:
        """Finish a running execution; a successful retry marks its original."""
        params = {
            "id": execution_id,
            "status": status.value,
            "result": rows.dump(result),
            "error": rows.dump(error),
            "now": now,
        }

        def transaction(conn: sqlite3.Connection) -> bool:
            if conn.execute(Q["finish"], params).rowcount != 1:
                return False
            conn.execute(Q["mark_retry_success"], {"id": execution_id})
            return True

        return await self._write(transaction)

    async def stop(self, execution_id: int, now: int) -> bool:
        """Cancel an execution that has not finished."""
        return await self._write(
            lambda c: c.execute(Q["stop"], {"id": execution_id, "now": now}).rowcount == 1
        )

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

        return await self._write(transaction)

    async def delete_execution(self, execution_id: int) -> bool:
        """Delete an execution that is not running (its waits go with it)."""
        return await self._write(
            lambda c: c.execute(Q["delete_execution"], {"id": execution_id}).rowcount == 1
        )

    async def list_executions(self, query: ExecutionQuery) -> list[Execution]:
        """A page of executions, newest first."""
        sql, params = _list_sql(query)
        found = await self._read(lambda c: c.execute(sql, params).fetchall())
        return [rows.execution_from_row(r) for r in found]

    async def stop_many(self, which: StopFilter, now: int) -> int:
        """Cancel every matching execution in one statement."""
        params = {
            "statuses": rows.dump([s.value for s in which.statuses]),
            "workflow_id": which.workflow_id,
            "project_id": which.project_id,
            "started_after": which.started_after,
            "started_before": which.started_before,
            "now": now,
        }
        return await self._write(lambda c: c.execute(Q["stop_many"], params).rowcount)

    # tags -----------------------------------------------------------------------------

    async def create_tag(self, tag_id: str, name: str, now: int) -> Tag | None:
        """A new tag, ``None`` on a duplicate name."""
        params = {"id": tag_id, "name": name, "now": now}
        row = await self._write(lambda c: c.execute(Q["create_tag"], params).fetchone())
        return None if row is None else rows.tag_from_row(row)

    async def get_tag(self, tag_id: str) -> Tag | None:
        """One tag."""
        row = await self._read(lambda c: c.execute(Q["get_tag"], {"id": tag_id}).fetchone())
        return None if row is None else rows.tag_from_row(row)

    async def list_tags(self, limit: int, after_id: str | None) -> list[Tag]:
        """A page of tags."""
        params = {"limit": limit, "after": after_id}
        found = await self._read(lambda c: c.execute(Q["list_tags"], params).fetchall())
        return [rows.tag_from_row(r) for r in found]

    async def rename_tag(self, tag_id: str, name: str, now: int) -> Tag | None:
        """Rename unless the name is taken."""
        params = {"id": tag_id, "name": name, "now": now}
        row = await self._write(lambda c: c.execute(Q["rename_tag"], params).fetchone())
        return None if row is None else rows.tag_from_row(row)

    async def delete_tag(self, tag_id: str) -> Tag | None:
        """Delete a tag."""
        row = await self._write(lambda c: c.execute(Q["delete_tag"], {"id": tag_id}).fetchone())
        return None if row is None else rows.tag_from_row(row)

    async def execution_tags(self, execution_id: int) -> list[Tag]:
        """An execution's tags."""
        found = await self._read(
            lambda c: c.execute(Q["execution_tags"], {"id": execution_id}).fetchall()
        )
        return [rows.tag_from_row(r) for r in found]

    async def set_execution_tags(self, execution_id: int, tag_ids: tuple[str, ...]) -> bool:
        """Replace the tags, all or nothing."""
        unique = sorted(set(tag_ids))

        def transaction(conn: sqlite3.Connection) -> bool:
            known = conn.execute(Q["count_known_tags"], {"tag_ids": rows.dump(unique)}).fetchone()
            if known["n"] != len(unique):
                return False
            conn.execute(Q["clear_execution_tags"], {"id": execution_id})
            conn.executemany(
                Q["add_execution_tag"], [{"id": execution_id, "tag_id": t} for t in unique]
            )
            return True

        return await self._write(transaction)

    # API keys -------------------------------------------------------------------------

    async def create_api_key(
        self,
        label: str,
        key_hash: str,
        prefix: str,
        scopes: tuple[str, ...],
        project_id: str | None,
        now: int,
    ) -> ApiKey:
        """Store a key by its hash."""
        params = {
            "label": label,
            "key_hash": key_hash,
            "prefix": prefix,
            "scopes": rows.dump(list(scopes)),
            "project_id": project_id,
            "now": now,
        }
        row = await self._write(lambda c: c.execute(Q["create_api_key"], params).fetchone())
        return rows.api_key_from_row(row)

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        """The live key with this hash."""
        row = await self._read(
            lambda c: c.execute(Q["find_api_key"], {"key_hash": key_hash}).fetchone()
        )
        return None if row is None else rows.api_key_from_row(row)

    async def list_api_keys(self) -> list[ApiKey]:
        """Every key."""
        found = await self._read(lambda c: c.execute(Q["list_api_keys"]).fetchall())
        return [rows.api_key_from_row(r) for r in found]

    async def revoke_api_key(self, key_id: int, now: int) -> bool:
        """Revoke a live key."""
        return await self._write(
            lambda c: c.execute(Q["revoke_api_key"], {"id": key_id, "now": now}).rowcount == 1
        )

    async def count_api_keys(self) -> int:
        """How many keys exist."""
        row = await self._read(lambda c: c.execute(Q["count_api_keys"]).fetchone())
        return int(row["n"])


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (no semicolons inside our literals)."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _list_sql(query: ExecutionQuery) -> tuple[str, dict[str, Any]]:
    where: list[str] = []
    params: dict[str, Any] = {"limit": query.limit}
    if query.statuses:
        names = [f":status{i}" for i in range(len(query.statuses))]
        where.append(f"status IN ({', '.join(names)})")
        params.update({n[1:]: s.value for n, s in zip(names, query.statuses, strict=True)})
    elif not query.include_running:
        where.append("status <> 'running'")
    simple = {
        "id < :before_id": query.before_id,
        "workflow_id = :workflow_id": query.workflow_id,
        "project_id = :project_id": query.project_id,
        "started_at > :started_after": query.started_after,
        "started_at < :started_before": query.started_before,
        "wait_till > :wait_till_after": query.wait_till_after,
        "wait_till < :wait_till_before": query.wait_till_before,
    }
    for clause, value in simple.items():
        if value is not None:
            where.append(clause)
            params[clause.split(":")[1]] = value
    for i, (key, value) in enumerate(query.custom_data):
        where.append(f"json_extract(custom_data, :cd_path{i}) = :cd_value{i}")
        params[f"cd_path{i}"] = f'$."{key}"'
        params[f"cd_value{i}"] = value
    for i, name in enumerate(query.tags):
        where.append(
            "EXISTS (SELECT 1 FROM execution_tags et JOIN tags t ON t.id = et.tag_id "
            f"WHERE et.execution_id = executions.id AND t.name = :tag{i})"
        )
        params[f"tag{i}"] = name
    sql = "SELECT * FROM executions"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + " ORDER BY id DESC LIMIT :limit", params
