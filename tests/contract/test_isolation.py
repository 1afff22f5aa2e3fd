"""PostgreSQL runs every statement at READ COMMITTED, and refuses to start at another level.

A call's resume is one statement run alone, decided by its conditional ``UPDATE``: at READ
COMMITTED a replica that loses the race finds no row; at REPEATABLE READ or SERIALIZABLE it gets
a serialization failure instead, which nothing retries. A database or role whose
``default_transaction_isolation`` is another level is refused at open, saying what to set.
"""

from __future__ import annotations

import pytest

from gateway.errors import ConfigError
from persistence.postgres import PostgresStore


def _with_setting(url: str, level: str) -> str:
    """The URL with a server setting asyncpg sends at connect (as a role's default would)."""
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}default_transaction_isolation={level.replace(' ', '%20')}"


@pytest.mark.parametrize("level", ["repeatable read", "serializable"])
async def test_a_database_defaulting_to_another_isolation_level_is_refused(
    postgres_url: str, level: str
) -> None:
    store = PostgresStore(_with_setting(postgres_url, level))
    with pytest.raises(ConfigError) as refused:
        await store.open()
    message = str(refused.value)
    assert f"default_transaction_isolation is {level}" in message
    assert "read committed" in message
    await store.close()  # nothing left open


async def test_read_committed_opens(postgres_url: str) -> None:
    store = PostgresStore(_with_setting(postgres_url, "read committed"))
    await store.open()
    try:
        await store.ping()
    finally:
        await store.close()
