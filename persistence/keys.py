"""API keys, stored by their hash."""

from __future__ import annotations

from gateway.domain import ApiKey
from persistence import rows
from persistence import script as q
from persistence.script import Script


def create_api_key(
    label: str,
    key_hash: str,
    prefix: str,
    scopes: tuple[str, ...],
    project_id: str | None,
    now: int,
) -> Script[ApiKey]:
    """Store a new key by its hash."""
    params = rows.api_key_params(label, key_hash, prefix, scopes, project_id, now)
    return rows.api_key_from_row((yield from q.one("create_api_key", params)))


def find_api_key(key_hash: str) -> Script[ApiKey | None]:
    """The live (not revoked) key with this hash."""
    found = yield from q.row("find_api_key", {"key_hash": key_hash})
    return None if found is None else rows.api_key_from_row(found)


def list_api_keys() -> Script[list[ApiKey]]:
    """Every key, revoked ones included."""
    return [rows.api_key_from_row(r) for r in (yield from q.rows("list_api_keys"))]


def revoke_api_key(key_id: int, now: int) -> Script[bool]:
    """Revoke a live key."""
    return (yield from q.count("revoke_api_key", {"id": key_id, "now": now})) == 1


def create_first_api_key(
    label: str, key_hash: str, prefix: str, scopes: tuple[str, ...], now: int
) -> Script[ApiKey | None]:
    """Store this key only if there is no key at all yet; ``None`` otherwise.

    Replicas that start together on an empty database create one admin key between them (the
    lock: SQLite's single writer, PostgreSQL's advisory lock).
    """
    yield from q.count("lock_first_api_key")
    if (yield from q.one("count_api_keys"))["n"]:
        return None
    return (yield from create_api_key(label, key_hash, prefix, scopes, None, now))
