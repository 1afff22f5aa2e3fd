"""The events a wait may end on: checked and registered when it parks, matched by index.

A wait's event conditions are rows of ``wait_events`` (source, optional name, how many keys)
with one ``wait_match_keys`` row per key, indexed by (source, path, value); the paths some
wait of a source matches on are kept in ``event_source_paths``, so an arriving event is
evaluated at those paths only. Whatever ends a wait deletes its conditions in the same
transaction (``clear_wait_events``). An event kept unmatched within its source's lookback is
applied when a wait that matches it parks (the park script resumes with it).
"""

from __future__ import annotations

from typing import Any

from gateway.errors import InvalidInput
from gateway.event_model import EventCondition, StoredEvent, indexable
from gateway.event_paths import lookup
from persistence import event_rows
from persistence import script as q
from persistence.script import Script

LOOKBACK_CANDIDATES = 10
"""Kept events tried per condition at park (another park may take one first)."""


def check_conditions(
    execution_id: int, seq: int, conditions: tuple[EventCondition, ...]
) -> Script[tuple[EventCondition, ...]]:
    """The conditions with customData references resolved, kept on wait ``seq``.

    ``InvalidInput`` (the park rolls back) naming the condition when its source does not exist
    or belongs to another project than the execution's (an execution without a project uses
    sources without one), or a referenced customData key is
    missing. Each source is share-locked (PostgreSQL) until the park commits, so an event of it
    either sees this wait's keys or is seen by its lookback.
    """
    found = yield from q.one("get_execution", {"id": execution_id})
    custom_data: dict[str, str] = event_rows.load_json(found["custom_data"]) or {}
    resolved = []
    for i, condition in enumerate(conditions):
        where = f"events[{i}]"
        source = yield from q.row("share_event_source", {"name": condition.source})
        if source is None or source["project_id"] != found["project_id"]:
            raise InvalidInput(f"{where}.source: there is no event source {condition.source!r}")
        resolved.append(condition.resolved(custom_data, where))
    params = {"id": execution_id, "seq": seq, "events": event_rows.dump_conditions(tuple(resolved))}
    yield from q.count("set_wait_events", params)
    return tuple(resolved)


def _backfill(source: str, path: str, now: int) -> Script[None]:
    """Evaluate the events kept for ``source`` at a path no wait of it used before."""
    values = []
    for kept in (yield from q.rows("kept_events_of_source", {"source": source, "now": now})):
        value = lookup(path, event_rows.event_body(kept), event_rows.event_headers(kept))
        if value is not None and indexable(value):
            values.append({"event_id": kept["id"], "source": source, "path": path, "value": value})
    yield from q.many("insert_event_value", values)


def watch(
    execution_id: int, seq: int, conditions: tuple[EventCondition, ...], now: int
) -> Script[StoredEvent | None]:
    """Register wait ``seq``'s conditions; then take (mark ``matched``) the oldest event kept
    for one of them within its lookback, if any, for the park to resume with."""
    key = {"id": execution_id, "seq": seq}
    for cond, condition in enumerate(conditions):
        values = condition.values
        head = {**key, "cond": cond, "source": condition.source}
        yield from q.count(
            "insert_wait_event", {**head, "name": condition.name, "n_keys": len(values)}
        )
        yield from q.many(
            "insert_wait_match_key", [{**head, "path": p, "value": v} for p, v in values.items()]
        )
        for path in values:
            added = yield from q.count(
                "add_source_path", {"source": condition.source, "path": path}
            )
            if added:
                yield from _backfill(condition.source, path, now)
    candidates: set[int] = set()
    for cond, condition in enumerate(conditions):
        params: dict[str, Any] = {"now": now, "name": condition.name, "limit": LOOKBACK_CANDIDATES}
        if condition.values:
            params.update(key, cond=cond, n_keys=len(condition.values))
            found = yield from q.rows("lookback_keyed", params)
        else:
            found = yield from q.rows("lookback_any", {**params, "source": condition.source})
        candidates.update(r["id"] for r in found)
    for event_id in sorted(candidates):
        taken = yield from q.row("take_kept_event", {"id": event_id})
        if taken is not None:
            return event_rows.event_from_row(taken)
    return None


def record_match(event_id: int, execution_id: int, seq: int) -> Script[None]:
    """Remember that the event resumed wait ``seq`` of the execution."""
    params = {"event_id": event_id, "id": execution_id, "seq": seq}
    yield from q.count("record_event_match", params)


def clear(execution_id: int) -> Script[None]:
    """End the event conditions of the execution's wait (it has ended)."""
    yield from q.count("clear_wait_events", {"id": execution_id})
