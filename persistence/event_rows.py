"""Event sources, events and event conditions as rows, and back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from gateway.event_model import (
    EVENT_STATUSES,
    EventCondition,
    EventSource,
    IncomingEvent,
    StoredEvent,
)

_encoder = msgspec.json.Encoder()


def _dump(value: Any) -> str:
    return _encoder.encode(value).decode()


def load_json(text: str | bytes | None) -> Any:
    return None if text is None else msgspec.json.decode(text)


def source_params(source: EventSource, now: int) -> dict[str, Any]:
    """Parameters of ``create_event_source`` / ``update_event_source``."""
    return {
        "name": source.name,
        "project_id": source.project_id,
        "verify": _dump(source.verify),
        "event_id_path": source.event_id_path,
        "event_name_path": source.event_name_path,
        "lookback_seconds": source.lookback_seconds,
        "dedup_seconds": source.dedup_seconds,
        "now": now,
    }


def source_from_row(row: Mapping[str, Any]) -> EventSource:
    """An ``event_sources`` row as an ``EventSource``."""
    return EventSource(
        name=row["name"],
        project_id=row["project_id"],
        verify=load_json(row["verify"]),
        event_id_path=row["event_id_path"],
        event_name_path=row["event_name_path"],
        lookback_seconds=row["lookback_seconds"],
        dedup_seconds=row["dedup_seconds"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def event_params(
    event: IncomingEvent, source: EventSource, now: int, duplicate_of: int | None
) -> dict[str, Any]:
    """Parameters of ``insert_event``: kept ``keep_until`` (the longer of the source's lookback
    and dedup windows); applicable at park until ``apply_until`` if it can match at all."""
    keep_ms = max(source.lookback_seconds, source.dedup_seconds) * 1000
    applicable = duplicate_of is None and event.parsed and source.lookback_seconds > 0
    return {
        "source": source.name,
        "project_id": source.project_id,
        "event_key": event.key,
        "name": event.name,
        "status": "duplicate" if duplicate_of is not None else "unmatched",
        "duplicate_of": duplicate_of,
        "via": event.via,
        "body": _dump(event.body) if event.parsed else None,
        "body_text": event.body_text,
        "headers": _dump(event.headers),
        "now": now,
        "apply_until": now + source.lookback_seconds * 1000 if applicable else None,
        "keep_until": now + keep_ms,
    }


def event_body(row: Mapping[str, Any]) -> Any:
    """The parsed body of an ``events`` row, ``None`` when it did not parse."""
    return load_json(row["body"])


def event_headers(row: Mapping[str, Any]) -> dict[str, str]:
    """The headers of an ``events`` row."""
    found: dict[str, str] = load_json(row["headers"]) or {}
    return found


def event_from_row(
    row: Mapping[str, Any], resumed: tuple[tuple[int, int], ...] = ()
) -> StoredEvent:
    """An ``events`` row as a ``StoredEvent``."""
    status = next(s for s in EVENT_STATUSES if s == row["status"])
    return StoredEvent(
        id=row["id"],
        source=row["source"],
        project_id=row["project_id"],
        key=row["event_key"],
        name=row["name"],
        status=status,
        via="api" if row["via"] == "api" else "provider",
        body=event_body(row) if row["body"] is not None else row["body_text"],
        headers=event_headers(row),
        received_at=row["received_at"],
        keep_until=row["keep_until"],
        apply_until=row["apply_until"],
        duplicate_of=row["duplicate_of"],
        matched=row["matched"],
        resumed=resumed,
    )


def resume_payload(event: StoredEvent) -> dict[str, Any]:
    """What the engine receives when an event resumes a wait (``eventId``: the provider's
    id, or the gateway's event id when the source names none)."""
    return {
        "source": event.source,
        "eventId": event.key if event.key is not None else str(event.id),
        "name": event.name,
        "body": event.body,
        "headers": event.headers,
        "resumedBy": "event",
    }


def dump_conditions(conditions: tuple[EventCondition, ...]) -> str | None:
    """A wait's ``events`` column: its resolved conditions."""
    if not conditions:
        return None
    return _dump([{"source": c.source, "name": c.name, "match": c.values} for c in conditions])


def load_conditions(text: str | None) -> tuple[EventCondition, ...]:
    """Inverse of ``dump_conditions``."""
    if text is None:
        return ()
    raw = load_json(text) or []
    return tuple(
        EventCondition(c["source"], c["name"], tuple((p, v) for p, v in c["match"].items()))
        for c in raw
    )


def match_key(values: Mapping[str, str]) -> str | None:
    """A condition's whole match as the one text its ``wait_events`` row is indexed by: its
    keys sorted by path, each ``<length of path>:<path><length of value>:<value>`` (lengths
    in characters, so no two sets of keys give the same text); ``None`` without keys. Migration
    0008 computes the same text in SQL."""
    if not values:
        return None
    return "".join(f"{len(p)}:{p}{len(v)}:{v}" for p, v in sorted(values.items()))


def shape(paths: Iterable[str]) -> str:
    """A set of paths as ``event_source_shapes`` keeps it: sorted, each ``<length>:<path>``."""
    return "".join(f"{len(p)}:{p}" for p in sorted(paths))


def shape_paths(text: str) -> list[str]:
    """Inverse of ``shape``."""
    paths, at = [], 0
    while at < len(text):
        colon = text.index(":", at)
        end = colon + 1 + int(text[at:colon])
        paths.append(text[colon + 1 : end])
        at = end
    return paths
