"""Events (issue 13): sources, the events they receive, and the conditions waits park with.

A source is declared by an operator and receives provider-signed events at one fixed URL; a
wait may end on an event of a source whose values at some dotted paths equal its ``match``
(values given, or taken from the execution's customData when it parks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from gateway.errors import InvalidInput

EventStatus = Literal["matched", "unmatched", "duplicate"]
"""``matched``: it resumed at least one wait; ``unmatched``: kept for its source's lookback;
``duplicate``: a redelivery of an id seen within the source's dedup window (changed nothing)."""
EVENT_STATUSES: tuple[EventStatus, ...] = get_args(EventStatus)
EventVia = Literal["provider", "api"]
"""How an event came in: at its source's inbound URL, or published over the API."""

SOURCE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_EVENTS_PER_WAIT = 10
MAX_MATCH_KEYS = 10
MAX_EVENT_NAME = 200
MAX_MATCH_VALUE = 1000
"""The longest match value in UTF-8 bytes (the (source, path, value) index must hold it); an
event's longer values are not indexed, as no wait can wait for them."""
DEFAULT_LOOKBACK_SECONDS = 3600
DEFAULT_DEDUP_SECONDS = 86_400
MAX_WINDOW_SECONDS = 30 * 86_400


def check_source_name(name: str) -> str:
    """A source name: 1 to 64 of ``A-Z a-z 0-9 _ -`` (it is a URL segment)."""
    if not SOURCE_NAME.fullmatch(name):
        raise InvalidInput("an event source name must be 1 to 64 of the characters A-Z a-z 0-9 _ -")
    return name


def indexable(value: str) -> bool:
    """Whether a value is short enough to be matched (``MAX_MATCH_VALUE``)."""
    return len(value.encode("utf-8", "surrogatepass")) <= MAX_MATCH_VALUE


@dataclass(frozen=True)
class EventSource:
    """An operator-defined source of events: how its events are verified and read."""

    name: str
    verify: dict[str, Any]
    """The ``verify`` declaration as JSON (``gateway.event_verify.convert_verify`` reads it)."""
    project_id: str | None = None
    event_id_path: str | None = None
    event_name_path: str | None = None
    lookback_seconds: int = DEFAULT_LOOKBACK_SECONDS
    dedup_seconds: int = DEFAULT_DEDUP_SECONDS
    created_at: int = 0
    updated_at: int = 0


@dataclass(frozen=True)
class CustomDataRef:
    """A match value taken from the parking execution's customData."""

    key: str


MatchValue = str | CustomDataRef


@dataclass(frozen=True)
class EventCondition:
    """One event a wait may end on, as parked: its source, optional name and match keys."""

    source: str
    name: str | None = None
    match: tuple[tuple[str, MatchValue], ...] = ()

    def resolved(self, custom_data: dict[str, str], where: str) -> EventCondition:
        """The condition with customData references replaced by their values; ``InvalidInput``
        naming the key when the execution's customData does not have it."""
        match = []
        for path, value in self.match:
            given = value
            if isinstance(value, CustomDataRef):
                if value.key not in custom_data:
                    raise InvalidInput(
                        f"{where}.match.{path}: the execution's customData has no key {value.key!r}"
                    )
                given = custom_data[value.key]
            match.append((path, given))
        return EventCondition(self.source, self.name, tuple(match))

    @property
    def values(self) -> dict[str, str]:
        """The match keys of a resolved condition."""
        return {path: value for path, value in self.match if isinstance(value, str)}


@dataclass(frozen=True)
class IncomingEvent:
    """A verified event, read as its source says: its provider id, its name, its body."""

    source: str
    key: str | None
    name: str | None
    body: Any
    """The parsed JSON body; ``None`` when it did not parse (the event then matches nothing)."""
    headers: dict[str, str] = field(default_factory=dict)
    body_text: str | None = None
    """The body as text when it did not parse as JSON."""
    via: EventVia = "provider"
    project_id: str | None = None
    """For an event published over the API: the publishing key's project (its source must be
    that project's)."""

    @property
    def parsed(self) -> bool:
        """Whether the body parsed as JSON (only then can it match)."""
        return self.body_text is None


@dataclass(frozen=True)
class StoredEvent:
    """An event as the store keeps it."""

    id: int
    source: str
    project_id: str | None
    key: str | None
    name: str | None
    status: EventStatus
    via: EventVia
    body: Any
    headers: dict[str, str]
    received_at: int
    keep_until: int
    apply_until: int | None = None
    duplicate_of: int | None = None
    matched: int = 0
    resumed: tuple[tuple[int, int], ...] = ()
    """``(execution id, wait seq)`` of each wait it resumed."""


@dataclass(frozen=True)
class EventOutcome:
    """What one event did: the waits it resumed, or nothing as a duplicate."""

    event_id: int
    resumed: tuple[tuple[int, int], ...] = ()
    duplicate: bool = False


@dataclass(frozen=True)
class EventQuery:
    """Filters and page for listing events (newest first)."""

    limit: int = 100
    before_id: int | None = None
    source: str | None = None
    status: EventStatus | None = None
    project_id: str | None = None
