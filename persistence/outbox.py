"""The outbox row for an event, the same for every backend."""

from __future__ import annotations

import secrets
from typing import Any

from gateway import events
from gateway.domain import Event, Execution, Wait
from persistence import rows


def delivery_params(
    execution: Execution, event: Event, now: int, wait: Wait | None
) -> dict[str, Any]:
    """Parameters of ``insert_delivery`` for ``event`` of ``execution`` (which has a callback)."""
    assert execution.callback_url is not None
    if event is Event.RESUMED:
        assert wait is not None
        payload = events.resumed(execution, wait, now)
    elif event is Event.CANCELED:
        payload = events.canceled(execution, now)
    else:
        payload = events.retry(execution, now)
    return {
        "id": "msg_" + secrets.token_hex(12),
        "execution_id": execution.id,
        "event": event.value,
        "target_url": execution.callback_url,
        "payload": rows.dump(payload),
        "now": now,
    }
