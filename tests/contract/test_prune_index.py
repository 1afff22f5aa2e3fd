"""Retention reads finished executions through the partial index ``executions_finished``.

Through ``executions_status`` SQLite read every finished execution for each batch of 500 and
sorted them in a temporary B-tree, inside the writer's transaction: at 1,000,000 finished,
9 ms a batch keeping 10,000 and 330 ms keeping 500,000, every write of the gateway waiting
meanwhile. The plans are checked on a file holding executions in every status; then what a
prune deletes is checked too.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.domain import NewExecution, Status
from persistence.sqlfiles import load_queries
from persistence.sqlite import SqliteStore
from tests.contract.plans import sqlite_plan

RETENTION_STATEMENTS = ("prune_floor", "prune_batch")
NOW = 1_800_000_000_000


async def _store(path: Path, finished: int, running: int) -> tuple[SqliteStore, list[int]]:
    """A store with ``finished`` executions ended in ``error`` one ms apart, then ``running``
    ones; the ids of the finished, oldest first."""
    store = SqliteStore(path)
    await store.open()
    await store.migrate()
    ended = []
    for n in range(finished):
        execution = await store.create_execution(NewExecution(workflow_id="w"), NOW + n)
        await store.finish(execution.id, Status.ERROR, None, None, NOW + n)
        ended.append(execution.id)
    for _ in range(running):
        await store.create_execution(NewExecution(workflow_id="w"), NOW)
    return store, ended


@pytest.mark.parametrize("name", RETENTION_STATEMENTS)
async def test_retention_reads_finished_executions_in_id_order_without_sorting(
    tmp_path: Path, name: str
) -> None:
    path = tmp_path / "w.db"
    store, _ = await _store(path, finished=3, running=2)
    await store.close()
    plan = sqlite_plan(path, name)
    assert "executions_finished" in plan, plan
    assert "TEMP B-TREE" not in plan, plan


async def test_a_prune_deletes_the_oldest_finished_past_the_count_and_no_running(
    tmp_path: Path,
) -> None:
    path = tmp_path / "w.db"
    store, ended = await _store(path, finished=7, running=3)
    try:
        floor = await store.prune_floor(4)
        assert await store.prune(cutoff=0, floor=floor, batch=2) == 2
        assert await store.prune(cutoff=0, floor=floor, batch=2) == 1
        assert await store.prune(cutoff=0, floor=floor, batch=2) == 0
        assert await store.prune(cutoff=NOW + 5, floor=floor, batch=10) == 2  # stopped before it
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        left = dict(conn.execute("SELECT id, status FROM executions").fetchall())
    assert left == {
        ended[5]: "error",
        ended[6]: "error",
        **{ended[-1] + n: "running" for n in (1, 2, 3)},
    }


async def test_no_partial_index_weighs_an_in_list_and_a_resume_builds_no_table(
    tmp_path: Path,
) -> None:
    """SQLite builds a temporary table for ``x IN (list)`` each time a write weighs a row
    against a partial index saying so (twice for an UPDATE): the resume's UPDATE, once a third
    of its steps, builds none."""
    path = tmp_path / "w.db"
    store, _ = await _store(path, finished=1, running=1)
    await store.close()
    with sqlite3.connect(path) as conn:
        partial = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql LIKE '% WHERE %'"
        ).fetchall()
        assert "executions_finished" in [name for name, _ in partial]
        assert [name for name, sql in partial if " IN (" in sql.upper()] == []
        steps = conn.execute(
            f"EXPLAIN {load_queries('sqlite')['resume_seen']}", {"id": 1, "seq": 1}
        ).fetchall()
    assert "OpenEphemeral" not in [step[1] for step in steps]
