"""n8n's cursor pagination and the list query parameters of ``GET /executions``."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

import msgspec
from starlette.datastructures import QueryParams

from gateway.domain import (
    CUSTOM_DATA_MAX_ITEMS,
    TAGS_MAX_ITEMS,
    ExecutionQuery,
    Status,
    parse_instant,
)
from gateway.errors import InvalidInput
from gateway.http import ApiError

DEFAULT_LIMIT = 100
MAX_LIMIT = 250


def encode_cursor(last_id: int, limit: int) -> str:
    """base64 of ``{"lastId": …, "limit": …}``, as n8n makes it."""
    return base64.b64encode(msgspec.json.encode({"lastId": last_id, "limit": limit})).decode()


def decode_cursor(cursor: str) -> tuple[int, int]:
    """``(lastId, limit)`` of a cursor; 400 ``An invalid cursor was provided`` otherwise."""
    try:
        raw = msgspec.json.decode(base64.b64decode(cursor, validate=True))
        last_id, limit = raw["lastId"], raw["limit"]
    except (binascii.Error, msgspec.DecodeError, KeyError, TypeError, ValueError):
        raise ApiError(400, "An invalid cursor was provided") from None
    whole = all(isinstance(v, int) and not isinstance(v, bool) for v in (last_id, limit))
    if not whole or not 1 <= limit <= MAX_LIMIT:
        raise ApiError(400, "An invalid cursor was provided")
    return last_id, limit


def page_limit(raw: str | None) -> int:
    """A ``limit`` parameter: a whole number from 1 to ``MAX_LIMIT``; ``DEFAULT_LIMIT`` when
    absent."""
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(400, f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def _instant(params: QueryParams, name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return parse_instant(raw, name)
    except InvalidInput as exc:
        raise ApiError(400, str(exc)) from None


def _statuses(raw: str | None) -> tuple[Status, ...]:
    if raw is None:
        return ()
    try:
        status = Status(raw)
    except ValueError:
        allowed = ", ".join(s.value for s in Status)
        raise ApiError(400, f"status must be one of {allowed}; got {raw!r}") from None
    if status is Status.ERROR:
        return (Status.ERROR, Status.CRASHED)
    return (status,)


def _custom_data(params: QueryParams) -> tuple[tuple[str, str], ...]:
    pairs = []
    for key, value in params.multi_items():
        if key.startswith("customData[") and key.endswith("]"):
            name = key[len("customData[") : -1]
            if not name.replace("_", "a").isalnum() or not name.isascii():
                raise ApiError(400, f"customData filter key {name!r} is not a valid key")
            pairs.append((name, value))
    if len(pairs) > CUSTOM_DATA_MAX_ITEMS:
        raise ApiError(
            400,
            f"at most {CUSTOM_DATA_MAX_ITEMS} customData filters may be given (an execution "
            f"holds at most {CUSTOM_DATA_MAX_ITEMS} items), got {len(pairs)}",
        )
    return tuple(pairs)


def _tags(raw: str | None) -> tuple[str, ...]:
    if not raw:
        return ()
    names = tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    if len(names) > TAGS_MAX_ITEMS:
        raise ApiError(400, f"tags may name at most {TAGS_MAX_ITEMS} tags, got {len(names)}")
    return names


def execution_query(params: QueryParams, project_id: str | None) -> ExecutionQuery:
    """The filters and page of a ``GET /executions`` request."""
    cursor = params.get("cursor")
    before_id = None
    limit = page_limit(params.get("limit"))
    if cursor:
        before_id, limit = decode_cursor(cursor)
    statuses = _statuses(params.get("status"))
    return ExecutionQuery(
        limit=limit,
        before_id=before_id,
        statuses=statuses,
        workflow_id=params.get("workflowId") or None,
        project_id=project_id or params.get("projectId") or None,
        started_after=_instant(params, "startedAfter"),
        started_before=_instant(params, "startedBefore"),
        wait_till_after=_instant(params, "waitTillAfter"),
        wait_till_before=_instant(params, "waitTillBefore"),
        custom_data=_custom_data(params),
        tags=_tags(params.get("tags")),
    )


def flag(params: QueryParams, name: str) -> bool | None:
    """A boolean query parameter: ``true``/``false``, absent is ``None``; 400 otherwise."""
    raw = params.get(name)
    if raw is None:
        return None
    if raw.lower() in {"true", "1"}:
        return True
    if raw.lower() in {"false", "0"}:
        return False
    raise ApiError(400, f"{name} must be true or false; got {raw!r}")


def page(items: list[Any], query: ExecutionQuery, id_of: Callable[[Any], int]) -> str | None:
    """``nextCursor`` for a page fetched with one row more than ``query.limit``."""
    if len(items) <= query.limit:
        return None
    del items[query.limit :]
    return encode_cursor(id_of(items[-1]), query.limit)
