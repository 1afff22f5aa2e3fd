"""Loads a dialect's named queries and numbered migrations from its ``.sql`` files."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_MIGRATION = re.compile(r"^(\d{4})_\w+\.sql$")


@dataclass(frozen=True)
class Migration:
    """One numbered schema migration."""

    version: int
    name: str
    sql: str


def load_queries(dialect: str) -> dict[str, str]:
    """The ``-- name: X`` blocks of ``sql/<dialect>/queries.sql``, by name."""
    text = resources.files("persistence").joinpath("sql", dialect, "queries.sql").read_text()
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice for {dialect}")
        queries[name] = body.strip().rstrip(";")
    return queries


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


def to_positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """``:name`` parameters as ``$1``, ``$2``… (each name once) and the names in that order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _PARAM.sub(number, sql), tuple(names)
