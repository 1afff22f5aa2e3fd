"""PostgreSQL connections: a pool for queries, a listener for other replicas, migrations.

asyncpg errors are translated here: a connection that cannot be had or is lost becomes
``StoreUnavailable`` (the API answers 503 while it lasts), anything else ``StoreError``. The
listener reconnects by itself; while it is down, replicas only lose the early wake-ups.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import asyncpg

from gateway.errors import InvalidInput, StoreError, StoreUnavailable, WaitgateError
from persistence.sqlfiles import load_migrations, load_queries, to_positional

log = logging.getLogger("waitgate.postgres")
T = TypeVar("T")
CHANNEL_PREFIX = "waitgate_"
CHANNELS = ("deadline", "outbox", "held")
MIGRATION_LOCK = 7_261_530_001  # pg_advisory_lock key: "waitgate migrations"
LISTENER_RETRY_SECONDS = 1.0
QUERIES = {name: to_positional(sql) for name, sql in load_queries("postgres").items()}

_UNAVAILABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.ReadOnlySQLTransactionError,
    asyncpg.DiskFullError,
    asyncpg.LockNotAvailableError,
    OSError,
    TimeoutError,
)


def translate(exc: BaseException) -> WaitgateError:
    """A driver error as the project's own: unavailable (503), a value the database cannot
    hold such as text with a NUL character (400), or anything else."""
    if isinstance(exc, _UNAVAILABLE):
        return StoreUnavailable(f"database unavailable: {type(exc).__name__}: {exc}")
    if isinstance(exc, asyncpg.DataError):
        return InvalidInput(f"a value cannot be stored: {exc}")
    return StoreError(f"database error: {type(exc).__name__}: {exc}")


def _args(names: tuple[str, ...], params: Mapping[str, Any]) -> list[Any]:
    return [params[name] for name in names]


class PgConnection:
    """One connection, speaking our named queries."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    @property
    def raw(self) -> asyncpg.Connection:
        """The asyncpg connection, for plain scripts such as migrations."""
        return self._conn

    async def row(self, name: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first row of a named query."""
        sql, names = QUERIES[name]
        found = await self._conn.fetchrow(sql, *_args(names, params))
        return None if found is None else dict(found)

    async def one(self, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """The row of a named query that must find one."""
        found = await self.row(name, params)
        if found is None:
            raise StoreError(f"{name} found no row")
        return found

    async def rows(self, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every row of a named query."""
        sql, names = QUERIES[name]
        return [dict(r) for r in await self._conn.fetch(sql, *_args(names, params))]

    async def query(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every row of an ad-hoc query with ``:named`` parameters."""
        positional, names = to_positional(sql)
        return [dict(r) for r in await self._conn.fetch(positional, *_args(names, params))]

    async def run(self, name: str, params: Mapping[str, Any]) -> None:
        """Execute a named statement."""
        sql, names = QUERIES[name]
        await self._conn.execute(sql, *_args(names, params))

    async def run_counted(self, name: str, params: Mapping[str, Any]) -> bool:
        """Execute a named statement; whether it touched exactly one row."""
        return await self.affected(name, params) == 1

    async def affected(self, name: str, params: Mapping[str, Any]) -> int:
        """Execute a named statement; how many rows it touched."""
        sql, names = QUERIES[name]
        status: str = await self._conn.execute(sql, *_args(names, params))
        return int(status.rsplit(maxsplit=1)[-1])

    async def notify(self, channel: str, payload: str) -> None:
        """NOTIFY the other replicas (delivered when the transaction commits)."""
        await self._conn.execute("SELECT pg_notify($1, $2)", CHANNEL_PREFIX + channel, payload)


class PostgresDatabase:
    """A connection pool plus one listening connection."""

    def __init__(self, dsn: str, *, min_connections: int, max_connections: int) -> None:
        self._dsn = dsn
        self._min = min_connections
        self._max = max_connections
        self._pool: asyncpg.Pool | None = None
        self._listener_task: asyncio.Task[None] | None = None

    async def open(self, heard: Callable[[str, str], None]) -> None:
        """Create the pool and start listening for the other replicas."""
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn, min_size=self._min, max_size=self._max, command_timeout=30
            )
        except (asyncpg.PostgresError, *_UNAVAILABLE) as exc:
            raise translate(exc) from exc
        self._listener_task = asyncio.create_task(self._listen(heard), name="waitgate-pg-listener")

    async def close(self) -> None:
        """Stop listening and close the pool."""
        if self._listener_task is not None:
            self._listener_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener_task
            self._listener_task = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _listen(self, heard: Callable[[str, str], None]) -> None:
        def callback(_conn: object, _pid: int, channel: str, payload: str) -> None:
            heard(channel.removeprefix(CHANNEL_PREFIX), payload)

        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn)
                for channel in CHANNELS:
                    await conn.add_listener(CHANNEL_PREFIX + channel, callback)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                heard("outbox", "")  # catch up on anything missed while not listening
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep listening whatever happened
                log.warning(
                    "listener lost its connection: %s", exc, extra={"action": "postgres.listener"}
                )
            finally:
                if conn is not None and not conn.is_closed():
                    await conn.close()
            await asyncio.sleep(LISTENER_RETRY_SECONDS)

    def _ready_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreUnavailable("store is not open")
        return self._pool

    async def transaction(self, fn: Callable[[PgConnection], Awaitable[T]]) -> T:
        """Run ``fn`` in one transaction."""
        try:
            async with self._ready_pool().acquire() as conn, conn.transaction():
                return await fn(PgConnection(conn))
        except (asyncpg.PostgresError, *_UNAVAILABLE) as exc:
            raise translate(exc) from exc

    async def read(self, fn: Callable[[PgConnection], Awaitable[T]]) -> T:
        """Run ``fn`` outside an explicit transaction."""
        try:
            async with self._ready_pool().acquire() as conn:
                return await fn(PgConnection(conn))
        except (asyncpg.PostgresError, *_UNAVAILABLE) as exc:
            raise translate(exc) from exc

    async def migrate(self) -> list[int]:
        """Apply pending migrations; an advisory lock lets replicas start at the same time."""

        async def apply_all(conn: PgConnection) -> list[int]:
            raw = conn.raw
            await raw.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await raw.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)"
            )
            done = {r["version"] for r in await raw.fetch("SELECT version FROM schema_migrations")}
            applied = []
            for migration in load_migrations("postgres"):
                if migration.version in done:
                    continue
                await raw.execute(migration.sql)
                await raw.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                    migration.version,
                    time.time_ns() // 1_000_000,
                )
                applied.append(migration.version)
            return applied

        return await self.transaction(apply_all)

    async def pending_migrations(self) -> list[int]:
        """Versions not yet applied."""

        async def read(conn: PgConnection) -> set[int]:
            raw = conn.raw
            exists = await raw.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
            if not exists:
                return set()
            return {r["version"] for r in await raw.fetch("SELECT version FROM schema_migrations")}

        done = await self.read(read)
        return [m.version for m in load_migrations("postgres") if m.version not in done]
