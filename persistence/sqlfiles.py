"""A dialect's named queries and numbered migrations (its ``.sql`` files), and the scripts
that apply the migrations."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from importlib import resources

from gateway.errors import StoreError
from persistence import script as q
from persistence.script import Script

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_MIGRATION = re.compile(r"^(\d{4})_\w+\.sql$")


@dataclass(frozen=True)
class Migration:
    """One numbered schema migration."""

    version: int
    name: str
    sql: str


def named_queries(text: str, origin: str) -> dict[str, str]:
    """The ``-- name: X`` blocks of one ``.sql`` text, by name (``origin`` names it in errors)."""
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice in {origin}")
        queries[name] = body.strip().rstrip(";")
    return queries


def load_queries(dialect: str) -> dict[str, str]:
    """The ``-- name: X`` blocks of ``sql/<dialect>/queries.sql``, by name."""
    text = resources.files("persistence").joinpath("sql", dialect, "queries.sql").read_text()
    return named_queries(text, dialect)


def load_migrations(dialect: str) -> list[Migration]:
    """The files ``sql/<dialect>/migrations/NNNN_name.sql``, in version order."""
    folder = resources.files("persistence").joinpath("sql", dialect, "migrations")
    migrations = []
    for entry in folder.iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            migrations.append(Migration(int(match.group(1)), entry.name, entry.read_text()))
    migrations.sort(key=lambda m: m.version)
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"{dialect} migrations are not numbered 1..n: {versions}")
    return migrations


def _applied(known: list[Migration], done: set[int]) -> None:
    """Refuse a database whose schema a newer waitgate has migrated."""
    newest = max((m.version for m in known), default=0)
    if done and max(done) > newest:
        raise StoreError(
            f"database schema version {max(done)} is newer than this waitgate "
            f"(knows up to {newest}); upgrade waitgate"
        )


def migrate(known: list[Migration]) -> Script[list[int]]:
    """Apply the migrations not applied yet, in one transaction; their versions.

    A lock (PostgreSQL's advisory lock; SQLite's single writer) lets replicas start together.
    """
    yield from q.count("lock_migrations")
    yield from q.count("create_schema_migrations")
    done = {r["version"] for r in (yield from q.rows("applied_migrations"))}
    _applied(known, done)
    applied = []
    for migration in known:
        if migration.version not in done:
            yield from q.script(migration.name, migration.sql)
            now = time.time_ns() // 1_000_000
            yield from q.count("record_migration", {"version": migration.version, "now": now})
            applied.append(migration.version)
    return applied


def pending_migrations(known: list[Migration]) -> Script[list[int]]:
    """Versions of the migrations not yet applied."""
    done: set[int] = set()
    if (yield from q.row("has_schema_migrations")) is not None:
        done = {r["version"] for r in (yield from q.rows("applied_migrations"))}
    _applied(known, done)
    return [m.version for m in known if m.version not in done]


def to_positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """``:name`` parameters as ``$1``, ``$2``… (each name once) and the names in that order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _PARAM.sub(number, sql), tuple(names)
