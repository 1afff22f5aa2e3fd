"""The PostgreSQL driver (asyncpg): a pool that runs scripts, a listener for other replicas.

Each script (a store verb) runs in one transaction on a pooled connection, ``await``-ing each
statement; the transaction begins at its first statement not marked ``alone`` (see
``persistence.script``). Due waits and deliveries are claimed with ``FOR UPDATE SKIP LOCKED``
so each is taken by one replica. A script's wake-ups are sent as NOTIFY before its commit
(PostgreSQL delivers them at the commit; after it, for a script that began none), so replicas
wake each other; notifications only make things sooner.

asyncpg errors are translated here: a connection that cannot be had or is lost becomes
``StoreUnavailable`` (the API answers 503 while it lasts), anything else ``StoreError``. The
listener reconnects by itself; while it is down, replicas only lose the early wake-ups.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import asyncpg

from gateway.errors import ConfigError, InvalidInput, StoreError, StoreUnavailable, WaitgateError
from persistence.base import Store
from persistence.script import Run, Script, Statement, Wake, WakeKind, Want
from persistence.sqlfiles import load_queries, to_positional

log = logging.getLogger("waitgate.postgres")
T = TypeVar("T")
CHANNEL_PREFIX = "waitgate_"
LISTENER_RETRY_SECONDS = 1.0
QUERIES = {name: to_positional(sql) for name, sql in load_queries("postgres").items()}
REQUIRED_ISOLATION = "read committed"
"""A call's resume is one conditional statement run alone: at this level a replica that loses
the race finds no row, where stricter levels fail with a serialization error."""

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


async def _execute(conn: asyncpg.Connection, statement: Statement) -> Any:
    name, params, want, text, _alone = statement
    if want is Want.DIALECT:
        return "postgres"
    sql, names = QUERIES[name] if text is None else to_positional(text("postgres"))
    if want is Want.MANY:
        await conn.executemany(sql, [_args(names, p) for p in params])
    elif want is Want.SCRIPT:
        await conn.execute(sql)
    elif want is Want.ROW:
        found = await conn.fetchrow(sql, *_args(names, params))
        return None if found is None else dict(found)
    elif want is Want.ROWS:
        return [dict(r) for r in await conn.fetch(sql, *_args(names, params))]
    else:
        changed = (await conn.execute(sql, *_args(names, params))).rsplit(maxsplit=1)[-1]
        return int(changed) if changed.isdigit() else 0  # "UPDATE 3"; "CREATE TABLE"
    return None


async def _run(
    conn: asyncpg.Connection, script: Script[T], *, transaction: bool
) -> tuple[T, list[Wake]]:
    """Run a whole script on ``conn``, then NOTIFY the wake-ups its statements did not (sent at
    the commit). With ``transaction``, in one that begins at the first statement not marked
    ``alone`` (those before it, and a script of only such statements, run without one)."""
    run = Run(script)
    async with contextlib.AsyncExitStack() as begun:
        step = run.first()
        inside = not transaction
        while step is not None:
            if not (inside or step.alone):
                await begun.enter_async_context(conn.transaction())
                inside = True
            step = run.send(await _execute(conn, step))
        for wake in dict.fromkeys(run.wakes):
            if not wake.sent:
                channel = CHANNEL_PREFIX + wake.kind.value
                await conn.execute("SELECT pg_notify($1, $2)", channel, wake.payload)
    return run.value, run.wakes


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """A pooled connection goes back as it is: the scripts leave no session state (no
    ``SET``, ``LISTEN``, cursor or session lock; locks are the transaction's), and asyncpg rolls
    back a transaction left open, so its reset query would cost a round trip per verb for
    nothing."""


class PostgresDatabase:
    """A connection pool plus one listening connection."""

    dialect = "postgres"

    def __init__(self, dsn: str, *, min_connections: int, max_connections: int) -> None:
        self._dsn = dsn
        self._min = min_connections
        self._max = max_connections
        self._pool: asyncpg.Pool | None = None
        self._listener_task: asyncio.Task[None] | None = None

    async def open(self, heard: Callable[[Wake], None]) -> None:
        """Create the pool and start listening for the other replicas."""
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min,
                max_size=self._max,
                command_timeout=30,
                reset=_keep_session,
            )
            async with self._pool.acquire() as conn:
                level = await conn.fetchval(QUERIES["isolation_level"][0])
        except (asyncpg.PostgresError, *_UNAVAILABLE) as exc:
            await self.close()
            raise translate(exc) from exc
        if level != REQUIRED_ISOLATION:
            await self.close()
            raise ConfigError(
                f"PostgreSQL: default_transaction_isolation is {level}; waitgate needs "
                f"{REQUIRED_ISOLATION} (ALTER ROLE <waitgate's role> SET "
                f"default_transaction_isolation = '{REQUIRED_ISOLATION}')"
            )
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

    async def _listen(self, heard: Callable[[Wake], None]) -> None:
        def callback(_conn: object, _pid: int, channel: str, payload: str) -> None:
            heard(Wake(WakeKind(channel.removeprefix(CHANNEL_PREFIX)), payload))

        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn)
                for kind in WakeKind:
                    await conn.add_listener(CHANNEL_PREFIX + kind.value, callback)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                heard(Wake(WakeKind.OUTBOX))  # catch up on anything missed while not listening
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

    async def write(
        self, script: Callable[[], Script[T]], *, brief: bool = False
    ) -> tuple[T, list[Wake]]:
        """Run the script ``script()`` makes in one transaction; its value and wake-ups once it
        has committed (``brief`` changes nothing here: every statement is awaited)."""
        try:
            async with self._ready_pool().acquire() as conn:
                return await _run(conn, script(), transaction=True)
        except (asyncpg.PostgresError, *_UNAVAILABLE) as exc:
            raise translate(exc) from exc

    async def read(self, script: Script[T], *, snapshot: bool = False) -> T:
        """Run a read-only ``script`` outside an explicit transaction (``snapshot``: in a
        read-only REPEATABLE READ one, two more round trips)."""
        try:
            async with self._ready_pool().acquire() as conn, contextlib.AsyncExitStack() as tx:
                if snapshot:
                    await tx.enter_async_context(
                        conn.transaction(isolation="repeatable_read", readonly=True)
                    )
                value, _ = await _run(conn, script, transaction=False)
                return value
        except (asyncpg.PostgresError, *_UNAVAILABLE) as exc:
            raise translate(exc) from exc


class PostgresStore(Store):
    """A ``Store`` in one PostgreSQL database, shared by any number of gateway replicas."""

    db: PostgresDatabase

    def __init__(self, dsn: str, *, min_connections: int = 2, max_connections: int = 10) -> None:
        super().__init__(
            PostgresDatabase(dsn, min_connections=min_connections, max_connections=max_connections)
        )

    @classmethod
    def from_url(cls, url: str) -> PostgresStore:
        """``postgresql://user@host:port/database``."""
        return cls(url)
