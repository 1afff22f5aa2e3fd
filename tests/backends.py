"""The database backends the contract tests run against.

PostgreSQL tests read ``WAITGATE_TEST_POSTGRES_URL`` (CI sets it); they create one fresh
database per test run and drop it afterwards, and are skipped, saying why, where it is unset.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

POSTGRES_ENV = "WAITGATE_TEST_POSTGRES_URL"
TABLES = (
    "idempotent_answers, held_responses, delivery_attempts, deliveries, execution_tags, tags, "
    "early_resumes, waits, executions, api_keys, event_sources, events, event_dedup, "
    "event_source_paths, event_source_shapes, event_values, wait_events, wait_match_keys, "
    "event_matches, channels, endpoints"
)


def postgres_admin_url() -> str | None:
    """The server the PostgreSQL tests may use, if any."""
    return os.environ.get(POSTGRES_ENV) or None


def skip_without_postgres() -> None:
    """Skip the calling test, saying why, when no PostgreSQL server is configured."""
    if postgres_admin_url() is None:
        pytest.skip(f"{POSTGRES_ENV} is not set: PostgreSQL tests need a server to run against")


def _run_apart(work: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine to the end on its own loop, even from inside a running one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, work()).result()


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


@contextlib.contextmanager
def fresh_postgres_database(admin: str) -> Iterator[str]:
    """A new, empty database on the server of ``admin`` (a URL), dropped afterwards."""
    import asyncpg

    name = f"waitgate_test_{os.getpid()}_{secrets.token_hex(4)}"

    async def create() -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    _run_apart(create)
    try:
        yield _with_database(admin, name)
    finally:
        _run_apart(drop)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database for this test run, dropped at the end."""
    admin = postgres_admin_url()
    if admin is None:
        pytest.skip(f"{POSTGRES_ENV} is not set: PostgreSQL tests need a server to run against")
    with fresh_postgres_database(admin) as url:
        yield url


async def truncate_postgres(url: str) -> None:
    """Empty every table (and restart ids) so each test starts from nothing."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        exists = await conn.fetchval("SELECT to_regclass('executions') IS NOT NULL")
        if exists:
            await conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()
