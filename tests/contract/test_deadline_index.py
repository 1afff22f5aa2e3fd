"""Every read of deadlines goes through the partial index ``executions_due``.

Without statistics (no ``ANALYZE``, as in every gateway's SQLite file) SQLite preferred
``executions_status`` for ``status = 'waiting'`` and read every waiting execution, deadline or
not, for each claim of the timer: 16 ms a claim at 100,000 parked, and the timer's lateness grew
with the number parked. The plans are checked on a file holding waits with and without
deadlines, as the timer's own statements run; then what they find is checked too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.domain import NewExecution, WebhookSpec
from persistence.sqlite import SqliteStore
from tests.contract.plans import sqlite_plan

DEADLINE_READS = ("claim_due", "next_deadline", "count_overdue", "overview_due")
NOW = 1_800_000_000_000
HOOK = WebhookSpec(methods=("POST",))


async def _parked(path: Path, deadlines: list[int | None]) -> SqliteStore:
    store = SqliteStore(path)
    await store.open()
    await store.migrate()
    for wait_till in deadlines:
        execution = await store.create_execution(NewExecution(workflow_id="w"), NOW)
        await store.park(execution.id, wait_till, HOOK, NOW)
    return store


@pytest.mark.parametrize("name", DEADLINE_READS)
async def test_each_read_of_deadlines_uses_the_partial_index(tmp_path: Path, name: str) -> None:
    path = tmp_path / "w.db"
    store = await _parked(path, [None, None, NOW + 10, None, NOW + 5])
    await store.close()
    plan = sqlite_plan(path, name)
    assert "executions_due" in plan, plan
    assert "executions_status" not in plan, plan


async def test_the_timer_finds_the_due_waits_among_those_without_deadline(tmp_path: Path) -> None:
    store = await _parked(tmp_path / "w.db", [None, NOW + 30, None, NOW + 10, NOW + 99_999, None])
    try:
        assert await store.next_deadline() == NOW + 10
        assert await store.count_overdue(NOW + 50) == 2
        claimed = await store.claim_due(NOW + 50, 10)
        assert sorted((t.execution_id, t.late_ms) for t in claimed) == [(2, 20), (4, 40)]
        assert await store.next_deadline() == NOW + 99_999
        assert await store.count_overdue(NOW + 50) == 0
    finally:
        await store.close()
