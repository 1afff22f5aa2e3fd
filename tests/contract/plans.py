"""The query plan SQLite chooses for a named statement of ``sql/sqlite/queries.sql``."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from persistence.sqlfiles import load_queries


def sqlite_plan(path: Path, name: str) -> str:
    """``EXPLAIN QUERY PLAN`` of the named statement on the file at ``path`` (every parameter
    0), its steps joined with `` | ``."""
    sql = load_queries("sqlite")[name]
    params = {p: 0 for p in re.findall(r"(?<!:):([a-z_]+)", sql)}
    with sqlite3.connect(path) as conn:
        rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    return " | ".join(row[3] for row in rows)
