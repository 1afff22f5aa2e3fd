"""Request bodies of the event API (sources, publish) and the ``events`` of a park."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType

from gateway.domain import check_text
from gateway.errors import InvalidInput
from gateway.event_model import (
    DEFAULT_DEDUP_SECONDS,
    DEFAULT_LOOKBACK_SECONDS,
    MAX_EVENT_NAME,
    MAX_EVENTS_PER_WAIT,
    MAX_MATCH_KEYS,
    MAX_MATCH_VALUE,
    MAX_WINDOW_SECONDS,
    CustomDataRef,
    EventCondition,
    EventSource,
    MatchValue,
    check_source_name,
    indexable,
)
from gateway.event_paths import check_path
from gateway.event_verify import Verify

Seconds = Annotated[int, Meta(ge=0, le=MAX_WINDOW_SECONDS)]
EventName = Annotated[str, Meta(min_length=1, max_length=MAX_EVENT_NAME)]
MAX_EVENT_ID = 255


class _Body(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """Unknown fields are an error, names are camelCase."""


def _path(path: str | None, where: str) -> str | None:
    return None if path is None else check_path(path, where)


class EventSourceBody(_Body):
    """``POST /api/v1/event-sources``."""

    name: str
    verify: Verify
    event_id_path: str | None = None
    event_name_path: str | None = None
    lookback_seconds: Seconds = DEFAULT_LOOKBACK_SECONDS
    dedup_seconds: Seconds = DEFAULT_DEDUP_SECONDS

    def to_source(self, project_id: str | None) -> EventSource:
        """Validated, as the store keeps it (in the creating key's project)."""
        return EventSource(
            name=check_source_name(self.name),
            verify=msgspec.to_builtins(self.verify),
            project_id=project_id,
            event_id_path=_path(self.event_id_path, "eventIdPath"),
            event_name_path=_path(self.event_name_path, "eventNamePath"),
            lookback_seconds=self.lookback_seconds,
            dedup_seconds=self.dedup_seconds,
        )


class EventSourcePatch(_Body):
    """``PATCH /api/v1/event-sources/{name}``: the fields given replace the source's (a path
    set to ``null`` goes back to the type's default)."""

    verify: Verify | UnsetType = UNSET
    event_id_path: str | UnsetType | None = UNSET
    event_name_path: str | UnsetType | None = UNSET
    lookback_seconds: Seconds | UnsetType = UNSET
    dedup_seconds: Seconds | UnsetType = UNSET

    def applied(self, source: EventSource) -> EventSource:
        """``source`` with the given fields replaced, validated."""
        changes: dict[str, Any] = {}
        if not isinstance(self.verify, UnsetType):
            changes["verify"] = msgspec.to_builtins(self.verify)
        if not isinstance(self.event_id_path, UnsetType):
            changes["event_id_path"] = _path(self.event_id_path, "eventIdPath")
        if not isinstance(self.event_name_path, UnsetType):
            changes["event_name_path"] = _path(self.event_name_path, "eventNamePath")
        if not isinstance(self.lookback_seconds, UnsetType):
            changes["lookback_seconds"] = self.lookback_seconds
        if not isinstance(self.dedup_seconds, UnsetType):
            changes["dedup_seconds"] = self.dedup_seconds
        return dataclasses.replace(source, **changes)


class CustomDataBody(_Body):
    """``{"customData": "<key>"}``: a match value taken from the execution's customData."""

    custom_data: Annotated[str, Meta(min_length=1, max_length=50)]


class EventConditionBody(_Body):
    """One event a wait may end on."""

    source: str
    name: EventName | None = None
    match: dict[str, str | CustomDataBody] = {}

    def to_condition(self, index: int) -> EventCondition:
        """Validated: at most ``MAX_MATCH_KEYS`` keys, each a valid path with a value the
        index can hold."""
        where = f"events[{index}]"
        if len(self.match) > MAX_MATCH_KEYS:
            raise InvalidInput(
                f"{where}.match may hold at most {MAX_MATCH_KEYS} keys, got {len(self.match)}"
            )
        match: list[tuple[str, MatchValue]] = []
        for path, value in self.match.items():
            check_path(path, f"{where}.match key {path[:50]!r}")
            if isinstance(value, CustomDataBody):
                match.append((path, CustomDataRef(value.custom_data)))
                continue
            check_text(f"{where}.match.{path}", value)
            if not indexable(value):
                raise InvalidInput(
                    f"{where}.match.{path} may be at most {MAX_MATCH_VALUE} bytes (UTF-8)"
                )
            match.append((path, value))
        if self.name is not None:
            check_text(f"{where}.name", self.name)
        return EventCondition(self.source, self.name, tuple(match))


def event_conditions(given: list[EventConditionBody] | None) -> tuple[EventCondition, ...]:
    """The ``events`` of a park: at most ``MAX_EVENTS_PER_WAIT``."""
    if not given:
        return ()
    if len(given) > MAX_EVENTS_PER_WAIT:
        raise InvalidInput(
            f"a wait may wait for at most {MAX_EVENTS_PER_WAIT} events, got {len(given)}"
        )
    return tuple(body.to_condition(i) for i, body in enumerate(given))


class PublishBody(_Body):
    """``POST /api/v1/events``: an internal event, without a provider signature."""

    source: str
    data: Any = None
    name: EventName | None = None
    id: Annotated[str, Meta(min_length=1, max_length=MAX_EVENT_ID)] | None = None
