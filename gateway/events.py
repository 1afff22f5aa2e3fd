"""Events in: how a verified request becomes an event, recording it (resuming every wait it
matches), and how sources and events look over HTTP.

A provider's event is verified by its source's ``verify`` before anything is stored; a refused
one is never stored (counted, logged, limited per address). A verified event is read as its
source says (provider id, name) and recorded in one transaction that resumes each matching
wait exactly once; the answer follows the commit.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from typing import Any

import msgspec

from gateway import metrics, tracing
from gateway.domain import ResumedBy, format_instant
from gateway.event_model import EventOutcome, EventSource, IncomingEvent, StoredEvent
from gateway.event_paths import lookup
from gateway.event_verify import (
    HeaderVerify,
    HmacVerify,
    Verify,
    convert_verify,
    default_event_id_path,
    redacted,
)
from gateway.executions import resumed
from gateway.payloads import MAX_JSON_DEPTH
from gateway.redaction import CREDENTIAL_HEADERS
from gateway.services import Services
from gateway.stored import clip_headers

log = logging.getLogger("waitgate.events")

DEFAULT_NAME_PATHS: dict[str, str] = {
    "stripe": "type",
    "github": "header:X-GitHub-Event",
    "standardWebhooks": "type",
    "slack": "event.type",
}
"""Where each provider names its event type, when the source names no ``eventNamePath``."""
MAX_KEY = 255
MAX_EVENT_ID = 2**63 - 1
"""The largest event id (a 64-bit integer column); a larger one names no event."""
MAX_NAME = 1000


def event_id_path(source: EventSource, config: Verify) -> str | None:
    """Where the source's events carry their provider id."""
    return source.event_id_path or default_event_id_path(config)


def event_name_path(source: EventSource, config: Verify) -> str | None:
    """Where the source's events carry their name."""
    return source.event_name_path or DEFAULT_NAME_PATHS.get(_type(config))


def _type(config: Verify) -> str:
    found: str = msgspec.to_builtins(config)["type"]
    return found


def _kept_headers(headers: Iterable[tuple[str, str]], config: Verify) -> dict[str, str]:
    """The headers kept with an event: bounded, without credentials (the source's own secret
    header included)."""
    secret = {config.header.lower()} if isinstance(config, HeaderVerify | HmacVerify) else set()
    drop = CREDENTIAL_HEADERS | secret
    return {k: v for k, v in clip_headers(headers) if k.lower() not in drop}


def _parse(raw: bytes) -> tuple[Any, str | None]:
    """The body as JSON and ``None``; or ``None`` and its text when it is not JSON (or nested
    deeper than resume payloads may be)."""
    try:
        body = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None, raw.decode("utf-8", "replace")
    if _deeper(body, MAX_JSON_DEPTH):
        return None, raw.decode("utf-8", "replace")
    return body, None


def _deeper(value: Any, levels: int) -> bool:
    if levels < 0:
        return True
    if isinstance(value, dict):
        return any(_deeper(v, levels - 1) for v in value.values())
    if isinstance(value, list):
        return any(_deeper(v, levels - 1) for v in value)
    return False


def _key(value: str | None) -> str | None:
    """A provider id as the dedup index keeps it (a very long one by its digest)."""
    if value is None or len(value) <= MAX_KEY:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def provider_event(
    source: EventSource, config: Verify, headers: Iterable[tuple[str, str]], raw: bytes
) -> IncomingEvent:
    """A verified request as an event of ``source``: its body, provider id and name."""
    body, text = _parse(raw)
    kept = _kept_headers(headers, config)
    id_path, name_path = event_id_path(source, config), event_name_path(source, config)
    key = None if id_path is None else lookup(id_path, body, kept)
    name = None if name_path is None else lookup(name_path, body, kept)
    return IncomingEvent(
        source=source.name,
        key=_key(key),
        name=None if name is None else name[:MAX_NAME],
        body=body,
        headers=kept,
        body_text=text,
    )


async def record(svc: Services, event: IncomingEvent) -> EventOutcome | None:
    """Record a verified event and resume every wait it matches (one transaction); ``None``
    if its source is gone (or is another project's, for an event published over the API)."""
    started = tracing.started()
    outcome = await svc.store.record_event(event, svc.clock.now_ms())
    if outcome is None:
        return None
    status = "duplicate" if outcome.duplicate else "matched" if outcome.resumed else "unmatched"
    metrics.EVENTS.labels(status).inc()
    for eid, seq in outcome.resumed:
        resumed(eid, seq, ResumedBy.EVENT)
    await tracing.resumed(svc.store, outcome.resumed, ResumedBy.EVENT, started)
    log.info(
        "event recorded",
        extra={
            "action": f"event.{status}",
            "source": event.source,
            "event_id": outcome.event_id,
            "matched": len(outcome.resumed),
        },
    )
    return outcome


async def visible_event(svc: Services, project_id: str | None, event_id: int) -> StoredEvent | None:
    """The event (with the waits it resumed) if it exists and a caller bound to ``project_id``
    (``None``: any) may see it."""
    event = await svc.store.get_event(event_id) if 0 < event_id <= MAX_EVENT_ID else None
    if event is None or project_id not in (None, event.project_id):
        return None
    return event


async def replay(svc: Services, event_id: int, project_id: str | None) -> EventOutcome | None:
    """Match a kept event again and resume every open wait it matches now: the one path of
    ``POST /api/v1/events/{id}/replay`` and the dashboard's Replay button. ``None`` for a
    duplicate (replay the event it duplicates) or an event ``project_id`` may not see."""
    started = tracing.started()
    outcome = await svc.store.replay_event(event_id, svc.clock.now_ms(), project_id)
    if outcome is None:
        return None
    for eid, seq in outcome.resumed:
        resumed(eid, seq, ResumedBy.EVENT)
    await tracing.resumed(svc.store, outcome.resumed, ResumedBy.EVENT, started)
    log.info(
        "event replayed",
        extra={"action": "event.replayed", "event_id": event_id, "matched": len(outcome.resumed)},
    )
    return outcome


def refused(source: EventSource, status: int, ip: str | None) -> None:
    """Count and log an event its source's verification refused (it is not stored)."""
    metrics.EVENT_REFUSALS.labels(source.name, str(status)).inc()
    log.info(
        "event refused",
        extra={"action": "event.refused", "source": source.name, "status": status, "ip": ip},
    )


def source_view(source: EventSource, public_url: str) -> dict[str, Any]:
    """A source as the API answers it: its inbound URL, its verify with secrets hidden, the
    paths in effect (the type's defaults where it names none)."""
    config = convert_verify(source.verify)
    return {
        "name": source.name,
        "projectId": source.project_id,
        "url": f"{public_url}/events/{source.name}",
        "verify": redacted(config),
        "eventIdPath": event_id_path(source, config),
        "eventNamePath": event_name_path(source, config),
        "lookbackSeconds": source.lookback_seconds,
        "dedupSeconds": source.dedup_seconds,
        "createdAt": format_instant(source.created_at),
        "updatedAt": format_instant(source.updated_at),
    }


def event_view(event: StoredEvent, *, include_data: bool) -> dict[str, Any]:
    """An event as the API answers it; body and headers only with ``include_data``."""
    view: dict[str, Any] = {
        "id": event.id,
        "source": event.source,
        "eventId": event.key,
        "name": event.name,
        "status": event.status,
        "via": event.via,
        "duplicateOf": event.duplicate_of,
        "receivedAt": format_instant(event.received_at),
        "applyUntil": format_instant(event.apply_until) if event.status == "unmatched" else None,
        "keepUntil": format_instant(event.keep_until),
        "matched": event.matched,
    }
    if include_data:
        view["body"] = event.body
        view["headers"] = event.headers
        view["resumed"] = [{"executionId": e, "seq": s} for e, s in event.resumed]
    return view
