"""Event sources and events: record a verified event, resume every wait it matches.

An event is recorded, de-duplicated, evaluated at its source's paths and matched through the
(source, match_key) index, one lookup per shape of its source, in one transaction that first
locks its source (PostgreSQL; the single writer on SQLite), so a wait parked at the same moment
is either matched now or finds the event kept. Each matching wait is resumed by the same
conditional write as every resume; whoever else ends it first wins and the event just does not
count it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.domain import ResumedBy
from gateway.event_model import (
    EventOutcome,
    EventQuery,
    EventSource,
    IncomingEvent,
    StoredEvent,
    indexable,
)
from gateway.event_paths import lookup
from persistence import event_rows, event_waits
from persistence import script as q
from persistence.script import Script
from persistence.waits import resume_wait


def create_event_source(source: EventSource, now: int) -> Script[EventSource | None]:
    """Add a source; ``None`` if its name is taken (by any project)."""
    found = yield from q.row("create_event_source", event_rows.source_params(source, now))
    return None if found is None else event_rows.source_from_row(found)


def get_event_source(name: str) -> Script[EventSource | None]:
    """One source."""
    found = yield from q.row("get_event_source", {"name": name})
    return None if found is None else event_rows.source_from_row(found)


def list_event_sources(
    project_id: str | None, after: str | None = None, limit: int = 100
) -> Script[list[EventSource]]:
    """Sources by name (only ``project_id``'s when given)."""
    params = {"project_id": project_id, "after": after, "limit": limit}
    return [
        event_rows.source_from_row(r) for r in (yield from q.rows("list_event_sources", params))
    ]


def update_event_source(source: EventSource, now: int) -> Script[EventSource | None]:
    """Replace a source's settings (its name and project stay); with ``source.project_id``,
    only that project's source. ``None`` if there is none."""
    found = yield from q.row("update_event_source", event_rows.source_params(source, now))
    return None if found is None else event_rows.source_from_row(found)


def delete_event_source(name: str, project_id: str | None) -> Script[bool]:
    """Delete a source with its events and the conditions waits have on it (they can no longer
    end by its events); with ``project_id``, only that project's source."""
    params = {"name": name, "project_id": project_id}
    return (yield from q.count("delete_event_source", params)) == 1


def _match(found: Mapping[str, Any], now: int) -> Script[tuple[tuple[int, int], ...]]:
    """Evaluate an event (``events`` row) at its source's paths and resume every open wait
    it matches, each by one conditional write; the waits it resumed.

    Each set of paths some condition of the source matches on (a shape) that the event has
    values at all of gives one text of the event's values there; one lookup of the
    (source, match_key) index finds the conditions with exactly those keys. So the work is one
    lookup per shape plus the waits matched, whatever number of waits share one of the keys.
    The event's values are kept (for lookback at park) only when it resumed nothing."""
    event_id, source = found["id"], found["source"]
    yield from q.count("clear_event_values", {"event_id": event_id})
    if found["body"] is None:
        return ()  # a body that did not parse matches nothing
    body, headers = event_rows.event_body(found), event_rows.event_headers(found)
    values: dict[str, str] = {}
    for r in (yield from q.rows("source_paths", {"source": source})):
        value = lookup(r["path"], body, headers)
        if value is not None and indexable(value):
            values[r["path"]] = value
    params = {"source": source, "name": found["name"]}
    candidates: set[tuple[int, int]] = set()
    for r in (yield from q.rows("source_shapes", {"source": source})):
        paths = event_rows.shape_paths(r["shape"])
        if all(p in values for p in paths):
            key = event_rows.match_key({p: values[p] for p in paths})
            found_keyed = yield from q.rows("match_event_key", {**params, "match_key": key})
            candidates.update((c["execution_id"], c["seq"]) for c in found_keyed)
    keyless = yield from q.rows("match_event_keyless", params)
    candidates.update((c["execution_id"], c["seq"]) for c in keyless)
    payload = event_rows.resume_payload(event_rows.event_from_row(found))
    resumed = []
    for eid, seq in sorted(candidates):
        if (yield from resume_wait(eid, seq, ResumedBy.EVENT, payload, now)):
            yield from event_waits.record_match(event_id, eid, seq)
            resumed.append((eid, seq))
    if resumed:
        yield from q.count("mark_event_matched", {"id": event_id, "n": len(resumed)})
    else:
        kept = [
            {"event_id": event_id, "source": source, "path": p, "value": v}
            for p, v in values.items()
        ]
        yield from q.many("insert_event_value", kept)
    return tuple(resumed)


def record_event(event: IncomingEvent, now: int) -> Script[EventOutcome | None]:
    """Record a verified event and resume every wait it matches; a redelivery of a provider id
    seen within the source's dedup window is recorded as a ``duplicate`` and changes nothing.
    ``None`` if the source does not exist (or, for an event published over the API, belongs
    to another project)."""
    found = yield from q.row("lock_event_source", {"name": event.source})
    if found is None:
        return None
    source = event_rows.source_from_row(found)
    if event.via == "api" and event.project_id not in (None, source.project_id):
        return None
    dedup = event.key is not None and source.dedup_seconds > 0
    first = None
    if dedup:
        key = {"source": source.name, "event_key": event.key, "now": now}
        first = yield from q.row("find_event_dedup", key)
    duplicate_of = None if first is None else first["event_id"]
    params = event_rows.event_params(event, source, now, duplicate_of)
    event_id = (yield from q.one("insert_event", params))["id"]
    if duplicate_of is not None:
        return EventOutcome(event_id, duplicate=True)
    if dedup:
        until = now + source.dedup_seconds * 1000
        dedup_params = {"source": source.name, "event_key": event.key, "event_id": event_id}
        yield from q.count("put_event_dedup", {**dedup_params, "until": until})
    stored = yield from q.one("get_event", {"id": event_id})
    return EventOutcome(event_id, (yield from _match(stored, now)))


def replay_event(event_id: int, now: int, project_id: str | None) -> Script[EventOutcome | None]:
    """Run matching again for a kept (not duplicate) event; ``None`` if there is none (of
    ``project_id``, when given)."""
    found = yield from q.row("get_event", {"id": event_id})
    if found is None or found["status"] == "duplicate":
        return None
    if project_id is not None and found["project_id"] != project_id:
        return None
    yield from q.row("lock_event_source", {"name": found["source"]})
    found = yield from q.row("get_event", {"id": event_id})  # as it is under the lock
    if found is None:
        return None
    return EventOutcome(event_id, (yield from _match(found, now)))


def get_event(event_id: int) -> Script[StoredEvent | None]:
    """One event, with the waits it resumed."""
    found = yield from q.row("get_event", {"id": event_id})
    if found is None:
        return None
    matches = yield from q.rows("event_matches", {"id": event_id})
    return event_rows.event_from_row(found, tuple((m["execution_id"], m["seq"]) for m in matches))


def events_of_execution(execution_id: int) -> Script[dict[int, int]]:
    """The events that resumed waits of the execution (and are still kept): event id by wait
    seq."""
    found = yield from q.rows("events_of_execution", {"id": execution_id})
    return {r["seq"]: r["event_id"] for r in found}


def list_events(query: EventQuery) -> Script[list[StoredEvent]]:
    """Events matching ``query``, newest first, at most ``query.limit``."""
    params = {
        "before_id": query.before_id,
        "source": query.source,
        "status": query.status,
        "project_id": query.project_id,
        "limit": query.limit,
    }
    return [event_rows.event_from_row(r) for r in (yield from q.rows("list_events", params))]


def prune_events(now: int, batch: int) -> Script[int]:
    """Delete up to ``batch`` events past their ``keep_until`` (and as many expired dedup
    entries); how many events."""
    deleted = yield from q.count("prune_events", {"now": now, "batch": batch})
    yield from q.count("prune_event_dedup", {"now": now, "batch": batch})
    return deleted


def prune_source_paths(name: str) -> Script[int]:
    """Forget the paths of a source no open wait matches on any more, and the shapes with one
    of them (under the source's lock, so no park registers one meanwhile); how many paths."""
    if (yield from q.row("lock_event_source", {"name": name})) is None:
        return 0
    unused = {r["path"] for r in (yield from q.rows("unused_source_paths", {"source": name}))}
    yield from q.many("delete_source_path", [{"source": name, "path": p} for p in sorted(unused)])
    shapes = [r["shape"] for r in (yield from q.rows("source_shapes", {"source": name}))]
    stale = [s for s in shapes if unused.intersection(event_rows.shape_paths(s))]
    yield from q.many("delete_source_shape", [{"source": name, "shape": s} for s in stale])
    return len(unused)
