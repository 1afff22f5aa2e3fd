"""Guards that keep the two dialects honest and the layers apart; the store's wake-ups.

Each verb is written once over named statements, so both ``queries.sql`` files must define
the same names and both migration chains must build the same tables and columns.
"""

from __future__ import annotations

import ast
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from gateway.domain import NewExecution, ResumedBy, StoredAnswer, WebhookSpec
from gateway.errors import StoreError
from gateway.outbox_model import DeliveryAttempt
from persistence import open_store
from persistence.base import Store
from persistence.sqlfiles import load_migrations, load_queries

NOW = 1_800_000_000_000
ROOT = Path(__file__).resolve().parents[2]
PERSISTENCE_MAY_USE = {
    "gateway.approvals",
    "gateway.channels",
    "gateway.domain",
    "gateway.early",
    "gateway.endpoints",
    "gateway.errors",
    "gateway.event_model",
    "gateway.event_paths",
    "gateway.files",
    "gateway.outbox_model",
    "gateway.overview",
    "gateway.stored",
    "gateway.trace_context",
}
"""The domain types the store keeps (approvals', channels' and events' included, and how an
event is read at a path; the dashboard overview's), its errors, and file modes: nothing of HTTP
or the app."""
NEWEST = max(m.version for m in load_migrations("sqlite"))
POSTGRES_ONLY = {"park_wait", "resume_call", "isolation_level"}
"""Statements a verb runs only where ``q.dialect()`` is PostgreSQL: one statement (data-modifying
``WITH``) for what it runs as several on SQLite; and the driver's check of the isolation level
when it opens."""


def test_both_dialects_define_the_same_statement_names() -> None:
    sqlite, postgres = load_queries("sqlite"), load_queries("postgres")
    assert sorted(set(sqlite) - set(postgres)) == []
    assert sorted(set(postgres) - set(sqlite)) == sorted(POSTGRES_ONLY)


def test_both_dialects_have_the_same_migration_numbers() -> None:
    numbers = {d: [m.version for m in load_migrations(d)] for d in ("sqlite", "postgres")}
    assert numbers["sqlite"] == numbers["postgres"]


async def _sqlite_columns(path: Path) -> dict[str, set[str]]:
    store = open_store(f"sqlite:///{path}")
    await store.open()
    try:
        await store.migrate()
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            table: {r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')}
            for table in names
            if not table.startswith("sqlite_")
        }
    finally:
        conn.close()


async def _postgres_columns(url: str) -> dict[str, set[str]]:
    store = open_store(url)
    await store.open()
    try:
        await store.migrate()
    finally:
        await store.close()
    conn = await asyncpg.connect(url)
    try:
        found = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema()"
        )
    finally:
        await conn.close()
    columns: dict[str, set[str]] = {}
    for row in found:
        columns.setdefault(row["table_name"], set()).add(row["column_name"])
    return columns


async def test_both_migration_chains_build_the_same_tables_and_columns(
    tmp_path: Path, postgres_url: str
) -> None:
    sqlite = await _sqlite_columns(tmp_path / "schema.db")
    postgres = await _postgres_columns(postgres_url)
    assert "executions" in sqlite
    assert sqlite == postgres


async def _set_applied(url: str, version: int, *, add: bool) -> None:
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            if add:
                conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (version,))
            else:
                conn.execute("DELETE FROM schema_migrations WHERE version = ?", (version,))
        finally:
            conn.close()
        return
    pg = await asyncpg.connect(url)
    try:
        if add:
            await pg.execute("INSERT INTO schema_migrations VALUES ($1, 0)", version)
        else:
            await pg.execute("DELETE FROM schema_migrations WHERE version = $1", version)
    finally:
        await pg.close()


async def test_a_schema_newer_than_the_code_is_refused(store: Store, backend_url: str) -> None:
    newer = NEWEST + 1
    await _set_applied(backend_url, newer, add=True)
    try:
        message = (
            f"database schema version {newer} is newer than this waitgate "
            f"(knows up to {NEWEST}); upgrade waitgate"
        )
        with pytest.raises(StoreError) as refused:
            await store.migrate()
        assert str(refused.value) == message
        with pytest.raises(StoreError, match="upgrade waitgate"):
            await store.pending_migrations()
    finally:
        await _set_applied(backend_url, newer, add=False)
    assert await store.migrate() == []


async def test_the_store_wakes_its_listeners_after_each_commit(store: Store) -> None:
    deadlines: list[int] = []
    outbox: list[bool] = []
    held: list[tuple[int, int]] = []
    store.on_deadline(deadlines.append)
    store.on_outbox(lambda: outbox.append(True))
    store.on_held_answer(lambda execution_id, seq: held.append((execution_id, seq)))
    new = NewExecution("wf", callback_url="https://engine.example/hook")
    eid = (await store.create_execution(new, NOW)).id
    hook = WebhookSpec(methods=("POST",), suffix="")
    assert await store.park(eid, NOW + 1000, hook, NOW)
    assert NOW + 1000 in deadlines
    outbox.clear()  # PostgreSQL's listener also wakes the dispatcher once it connects
    assert await store.resume(eid, 1, ResumedBy.WEBHOOK, None, NOW + 1)
    assert outbox
    outbox.clear()
    (delivery,) = await store.claim_deliveries(NOW + 2, 10, 60_000)
    failed = DeliveryAttempt(delivery.id, NOW + 2, 5, None, "refused")
    await store.record_attempt(failed, next_attempt_at=None, now=NOW + 2)
    assert await store.redeliver(delivery.id, NOW + 3) is not None
    assert outbox
    assert await store.put_held_answer(eid, 1, StoredAnswer(200, {}, b""), NOW + 4)
    assert (eid, 1) in held


def _imports(package: str) -> dict[str, set[str]]:
    """The top modules each file of ``package`` imports (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def test_drivers_stay_in_persistence_and_http_stays_out_of_it() -> None:
    drivers = {"sqlite3", "aiosqlite", "asyncpg"}
    for path, names in _imports("gateway").items():
        assert not {n.split(".")[0] for n in names} & drivers, path
    for path, names in _imports("persistence").items():
        assert not any(n.split(".")[0] in {"starlette", "uvicorn", "httpx"} for n in names), path
        upward = {n for n in names if n.startswith("gateway.")} - PERSISTENCE_MAY_USE
        assert not upward, (path, upward)
