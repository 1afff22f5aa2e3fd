"""Executions: create, retry, finish, stop, customData, delete, list, count, retention.

Every transition is one conditional write; the outbox row that tells the engine about it is
written in the same transaction, so nothing acknowledged can be lost and nothing is announced
that did not happen. A transition returns the row after its write, or ``Unchanged`` with the
row that refused it, read in the same transaction.
"""

from __future__ import annotations

from typing import Any

from gateway.domain import (
    JSON,
    RETRYABLE,
    Execution,
    ExecutionQuery,
    NewExecution,
    Retried,
    Status,
    StopFilter,
    Unchanged,
    Wait,
    check_custom_data_count,
)
from gateway.errors import StoreError
from gateway.outbox_model import Event
from gateway.overview import HOUR_MS, HOURS, MAX_APPROVALS, Overview, WaitingApproval
from gateway.trace_context import TraceContext
from persistence import event_waits, rows, timers, traces
from persistence import script as q
from persistence.outbox import emit
from persistence.script import Script

CUSTOM_DATA_EQUALS = {
    "sqlite": "json_extract(custom_data, '$.\"' || :cd_key{i} || '\"') = :cd_value{i}",
    "postgres": "(custom_data::jsonb ->> :cd_key{i}::text) = :cd_value{i}",
}


def create_execution(
    new: NewExecution, now: int, trace: TraceContext | None = None
) -> Script[Execution]:
    """Insert a ``running`` execution (a retry with a callback URL is announced to the engine),
    keeping the ``trace`` context its creator gave. Without an announcement the insert is the
    only statement, run alone (PostgreSQL: without ``BEGIN`` and ``COMMIT``)."""
    announced = new.retry_of is not None and new.callback_url is not None
    execution = rows.execution_from_row(
        (yield from insert_execution(new, now, trace, alone=not announced))
    )
    if announced:
        yield from emit(execution.id, Event.RETRY, now)
    return execution


def insert_execution(
    new: NewExecution, now: int, trace: TraceContext | None, *, alone: bool
) -> Script[q.Row]:
    """The insert of a ``running`` execution; its row (``alone``: the script writes nothing
    after it that must commit with it, see ``persistence.script``)."""
    params = {**rows.new_execution_params(new, now), **traces.for_execution(trace)}
    found = yield from q.row("create_execution", params, alone=alone)
    if found is None:
        raise StoreError("create_execution found no row")
    return found


def unchanged(execution_id: int) -> Script[Unchanged]:
    """The outcome of a transition whose condition did not hold: the execution as it is now,
    in the refusing transaction (SQLite's single writer: exactly the state that refused)."""
    return Unchanged((yield from get_execution(execution_id, with_waits=True)))


def retry_execution(execution_id: int, now: int) -> Script[Retried | Unchanged]:
    """The retry of a failed, crashed or canceled execution.

    An earlier retry that is under way or succeeded is returned as it is; only when every
    earlier retry failed too is a new one made (``running``, ``retryOf``, with its
    ``execution.retry`` outbox row), in one transaction that first locks the execution (SQLite:
    the single writer), so concurrent calls make one retry and the others find it.
    ``Unchanged`` if the execution is gone or may not be retried.
    """
    found = yield from q.row("get_execution_for_update", {"id": execution_id})
    if found is None or Status(found["status"]) not in RETRYABLE:
        return (yield from unchanged(execution_id))
    earlier = yield from q.row("find_retry", {"id": execution_id})
    if earlier is not None:
        return Retried(rows.execution_from_row(earlier), created=False)
    new = rows.execution_from_row(found).retry()
    return Retried((yield from create_execution(new, now)), created=True)


def get_execution(
    execution_id: int, *, with_waits: bool = False, alone: bool = False
) -> Script[Execution | None]:
    """One execution, with its waits if asked (``alone``: read outside the transaction if
    none is begun yet, see ``persistence.script``)."""
    key = {"id": execution_id}
    found = yield from q.row("get_execution", key, alone=alone)
    if found is None:
        return None
    waits: tuple[Wait, ...] = ()
    if with_waits:
        waits = tuple(
            rows.wait_from_row(w) for w in (yield from q.rows("get_waits", key, alone=alone))
        )
    return rows.execution_from_row(found, waits)


def finish(
    execution_id: int, status: Status, result: JSON, error: JSON, now: int
) -> Script[Execution | Unchanged]:
    """Move a ``running`` execution to ``success`` or ``error`` (a successful retry marks its
    original); the execution after, with its waits."""
    params = rows.finish_params(execution_id, status, result, error, now)
    finished = yield from q.row("finish", params)
    if finished is None:
        return (yield from unchanged(execution_id))
    yield from q.count("mark_retry_success", {"id": execution_id})
    waits = yield from q.rows("get_waits", {"id": execution_id})
    return rows.execution_from_row(finished, tuple(rows.wait_from_row(w) for w in waits))


def stop(execution_id: int, now: int, wait_seq: int | None = None) -> Script[Execution | Unchanged]:
    """Cancel a new, unknown, running or waiting execution; its wait ends for good.

    With ``wait_seq``, only an execution still ``waiting`` at that wait is canceled (a page
    signed for one wait never stops the execution once that wait has ended).
    """
    stopped = yield from q.row("stop", {"id": execution_id, "now": now, "wait_seq": wait_seq})
    if stopped is None:
        return (yield from unchanged(execution_id))
    yield from event_waits.clear(execution_id)
    yield from timers.clear([execution_id])
    if stopped["callback_url"] is not None:
        yield from emit(execution_id, Event.CANCELED, now)
    return rows.execution_from_row(stopped)


def stop_many(which: StopFilter, now: int) -> Script[int]:
    """Cancel every execution matching ``which``, in one statement; how many."""
    stopped = yield from q.rows("stop_many", rows.stop_many_params(which, now))
    yield from q.many("clear_wait_events", [{"id": found["id"]} for found in stopped])
    yield from timers.clear(found["id"] for found in stopped)
    for found in stopped:
        if found["callback_url"] is not None:
            yield from emit(found["id"], Event.CANCELED, now)
    return len(stopped)


def set_custom_data(
    execution_id: int, values: dict[str, str], *, replace: bool
) -> Script[dict[str, str] | None]:
    """Add or replace keys (or replace all) with one compare-and-set write; the merged result,
    ``None`` if no execution.

    Raises ``InvalidInput`` if the merge would hold more than ten items.
    """
    found = yield from q.row("get_execution_for_update", {"id": execution_id})
    if found is None:
        return None
    merged = dict(values) if replace else {**rows.load(found["custom_data"]), **values}
    check_custom_data_count(merged)
    params = {
        "id": execution_id,
        "custom_data": rows.dump(merged),
        "previous": found["custom_data"],
    }
    if (yield from q.count("set_custom_data", params)) != 1:
        raise StoreError("customData changed during its own transaction")
    return merged


def delete_execution(execution_id: int) -> Script[Execution | Unchanged]:
    """Delete an execution that is not running, with everything that belongs to it; the
    execution as it was."""
    deleted = yield from q.row("delete_execution", {"id": execution_id})
    if deleted is None:
        return (yield from unchanged(execution_id))
    return rows.execution_from_row(deleted)


def list_executions(query: ExecutionQuery, *, with_waits: bool = False) -> Script[list[Execution]]:
    """Executions matching ``query`` (filters joined with AND), newest first, at most
    ``query.limit``; with their waits if asked (one more statement for the whole page)."""
    where: list[str] = []
    params: dict[str, Any] = {"limit": query.limit}
    if query.statuses:
        names = [f":status{i}" for i in range(len(query.statuses))]
        where.append(f"status IN ({', '.join(names)})")
        params.update({n[1:]: s.value for n, s in zip(names, query.statuses, strict=True)})
    elif not query.include_running:
        where.append("status <> 'running'")
    simple = {
        "id < :before_id": query.before_id,
        "workflow_id = :workflow_id": query.workflow_id,
        "project_id = :project_id": query.project_id,
        "started_at > :started_after": query.started_after,
        "started_at < :started_before": query.started_before,
        "wait_till > :wait_till_after": query.wait_till_after,
        "wait_till < :wait_till_before": query.wait_till_before,
    }
    for clause, value in simple.items():
        if value is not None:
            where.append(clause)
            params[clause.split(":")[1]] = value
    if query.workflow_prefix:  # no LIKE: no wildcards to escape, case-sensitive on both
        where.append("substr(workflow_id, 1, :prefix_length) = :workflow_prefix")
        params["workflow_prefix"] = query.workflow_prefix
        params["prefix_length"] = len(query.workflow_prefix)
    for i, name in enumerate(query.tags):
        where.append(
            "EXISTS (SELECT 1 FROM execution_tags et JOIN tags t ON t.id = et.tag_id "
            f"WHERE et.execution_id = executions.id AND t.name = :tag{i})"
        )
        params[f"tag{i}"] = name
    for i, (key, value) in enumerate(query.custom_data):
        params[f"cd_key{i}"] = key
        params[f"cd_value{i}"] = value

    def text(dialect: str) -> str:
        custom = [CUSTOM_DATA_EQUALS[dialect].format(i=i) for i in range(len(query.custom_data))]
        clauses = where + custom
        sql = "SELECT * FROM executions"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        return sql + " ORDER BY id DESC LIMIT :limit"

    found = yield from q.rows("list_executions", params, text)
    waits: dict[int, list[Wait]] = {}
    if with_waits and found:
        ids = rows.dump([r["id"] for r in found])
        for w in (yield from q.rows("waits_of_executions", {"ids": ids})):
            waits.setdefault(w["execution_id"], []).append(rows.wait_from_row(w))
    return [rows.execution_from_row(r, tuple(waits.get(r["id"], ()))) for r in found]


def count_by_status() -> Script[dict[str, int]]:
    """How many executions there are in each status."""
    return {r["status"]: int(r["n"]) for r in (yield from q.rows("count_by_status"))}


def overview(project: str | None, now: int) -> Script[Overview]:
    """The dashboard's overview of the executions of ``project`` (``None``: every project's),
    at ``now``."""
    scope = {"all_projects": project is None, "project": project}
    counts = yield from q.rows("overview_counts", scope)
    waiting = yield from q.rows("overview_approvals", {**scope, "limit": MAX_APPROVALS})
    approvals = []
    for r in waiting:
        webhook = rows.load_webhook(r["webhook"])
        title = "" if webhook is None or webhook.approval is None else webhook.approval.title
        approvals.append(
            WaitingApproval(r["id"], r["workflow_id"], title, r["parked_at"], r["wait_till"])
        )
    until = now + HOURS * HOUR_MS
    due = yield from q.rows("overview_due", {**scope, "now": now, "until": until})
    by_hour = [0] * HOURS
    for r in due:
        by_hour[int(r["hour"])] += int(r["n"])
    return Overview({r["status"]: int(r["n"]) for r in counts}, tuple(approvals), tuple(by_hour))


def prune_floor(keep: int) -> Script[int]:
    """The id of the newest finished execution that is not among the newest ``keep`` finished
    ones (0 if there is none): retention deletes finished executions up to it."""
    found = yield from q.row("prune_floor", {"keep": keep})
    return 0 if found is None else int(found["id"])


def prune(cutoff: int, floor: int, batch: int) -> Script[int]:
    """Delete up to ``batch`` finished executions that stopped before ``cutoff`` or whose id is
    at most ``floor`` (``prune_floor``, read once per retention run: executions finished since
    only raise it, so an older floor deletes no more), with everything that belongs to them.
    Waiting, new and running executions are never deleted. How many were deleted."""
    params = {"cutoff": cutoff, "floor": floor, "batch": batch}
    return (yield from q.count("prune_batch", params))


def database_time() -> Script[int | None]:
    """The database server's clock in ms, where it has its own (``None`` for SQLite)."""
    now = (yield from q.one("database_time"))["now"]
    return None if now is None else int(now)
