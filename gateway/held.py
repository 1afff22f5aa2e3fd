"""Held resume callers (``responseMode`` lastNode / responseNode) and the answers they get.

A caller whose wait holds it waits here until the engine finishes the execution, responds
explicitly, or parks it at a new wait. The answer is written to the store first, so it reaches
the caller whichever process holds the request: the holder is woken at once when the answer is
produced in its own process, and otherwise finds it at its next look at the store.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections import defaultdict
from typing import Any

import msgspec
from starlette.responses import Response

from gateway.answers import BODILESS, CONFIRM_KIND, sendable
from gateway.clock import Clock
from gateway.domain import JSON, AnswerKind, Ending, StoredAnswer
from gateway.errors import InvalidInput
from persistence.base import Store

POLL_MS = 100
_encoder = msgspec.json.Encoder()


def json_answer(
    status_code: int, body: JSON, kind: AnswerKind, headers: dict[str, str] | None = None
) -> StoredAnswer:
    """An answer with a JSON body."""
    return StoredAnswer(
        status_code,
        {"content-type": "application/json", **(headers or {})},
        _encoder.encode(body),
        kind,
    )


def finished_answer(status: Ending, result: JSON, response_data: str) -> StoredAnswer:
    """What a lastNode caller gets when the engine finishes (n8n's ``responseData`` choices)."""
    if status != "success":
        return json_answer(500, {"message": "Error in workflow"}, "finished")
    if response_data == "noData":
        return StoredAnswer(200, {}, b"", "finished")
    entries = result if isinstance(result, list) else [result]
    entries = [e["json"] if isinstance(e, dict) and set(e) >= {"json"} else e for e in entries]
    if response_data == "allEntries":
        return json_answer(200, entries, "finished")
    return json_answer(200, entries[0] if entries else {}, "finished")


def explicit_answer(status_code: int, headers: dict[str, str], body: Any) -> StoredAnswer:
    """What a responseNode caller gets from ``POST /executions/{id}/respond``.

    ``body`` may be a string (sent as is), ``{"binary": {"data": base64, "mimeType": …}}``
    (sent as those bytes), or any other JSON value (sent as JSON).
    """
    if isinstance(body, str):
        headers = {"content-type": "text/plain; charset=utf-8", **headers}
        return StoredAnswer(status_code, headers, body.encode(), "respond")
    if isinstance(body, dict) and isinstance(body.get("binary"), dict):
        binary = body["binary"]
        try:
            data = base64.b64decode(str(binary.get("data", "")), validate=True)
        except binascii.Error:
            raise InvalidInput("body.binary.data must be base64") from None
        mime = str(binary.get("mimeType") or "application/octet-stream")
        return StoredAnswer(status_code, {"content-type": mime, **headers}, data, "respond")
    return json_answer(status_code, body, "respond", headers)


def to_response(answer: StoredAnswer, method: str = "GET", *, replayed: bool = False) -> Response:
    """A stored answer as an HTTP response (``Idempotent-Replayed: true`` on a replay).

    Headers an engine may not set are left out, whenever the answer was stored; 204 and 304
    answers carry no body.
    """
    own = answer.kind == CONFIRM_KIND
    headers = dict(answer.headers) if own else sendable(answer.headers)
    if replayed:
        headers["idempotent-replayed"] = "true"
    media_type = headers.pop("content-type", None)
    body = b"" if method == "HEAD" or answer.status_code in BODILESS else answer.body
    return Response(body, status_code=answer.status_code, headers=headers, media_type=media_type)


class HeldCallers:
    """Callers waiting for the answer to the wait they resumed."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._events: defaultdict[tuple[int, int], asyncio.Event] = defaultdict(asyncio.Event)

    def answered(self, execution_id: int, seq: int) -> None:
        """An answer for this wait was just stored in this process: wake its holder."""
        event = self._events.get((execution_id, seq))
        if event is not None:
            event.set()

    async def wait(self, execution_id: int, seq: int, timeout_ms: int) -> StoredAnswer | None:
        """The answer for the caller held at this wait, or ``None`` after ``timeout_ms``."""
        key = (execution_id, seq)
        event = self._events[key]
        deadline = self._clock.now_ms() + timeout_ms
        try:
            while True:
                answer = await self._store.get_held_answer(execution_id, seq)
                if answer is not None:
                    return answer
                left = deadline - self._clock.now_ms()
                if left <= 0:
                    return None
                event.clear()
                await self._clock.wait(event, min(left, POLL_MS))
        finally:
            self._events.pop(key, None)
