"""What of an execution's data is shown: secrets masked, values redacted, size limited.

By default the headers that carry credentials (``authorization``, ``cookie`` …, and the header
a wait's own header or HMAC caller check reads) are masked in every stored resume payload: the
value becomes ``"**redacted**"``, the name stays. ``redactExecutionData=true`` masks every value
(keeping the shape) and says so in ``redactionInfo``; ``false`` reveals everything, for callers
with ``execution:reveal``. Data whose JSON is larger than the display limit is not shown at all.
Every read that shows a resume payload (``includeData``, callback deliveries, the dashboard)
goes through ``shown_payload``; a wait's own secrets (its ``authentication``) are never data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from gateway.domain import Wait, WebhookSpec

MASK = "**redacted**"
CREDENTIAL_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-n8n-api-key",
        "x-api-key",
        "x-auth-token",
    }
)
"""Headers that carry a credential: never kept with an event, masked wherever shown."""
SENSITIVE_HEADERS = CREDENTIAL_HEADERS | frozenset(
    {"x-hub-signature", "x-hub-signature-256", "stripe-signature", "webhook-signature"}
)
"""Headers masked wherever a payload is shown (credentials and provider signatures)."""


def caller_secret_headers(webhook: WebhookSpec | None) -> frozenset[str]:
    """The header a wait's own caller check reads (header or HMAC auth), lower-cased."""
    if webhook is None or webhook.auth.kind not in {"header", "hmac"} or not webhook.auth.header:
        return frozenset()
    return frozenset({webhook.auth.header.lower()})


def shown_payload(
    payload: Any, *, redact: bool | None, secret_headers: frozenset[str] = frozenset()
) -> Any:
    """One stored resume payload as the caller may see it: the masking rule of every read.

    ``redact`` is the ``redactExecutionData`` parameter: ``None`` masks credential headers (and
    ``secret_headers``, the wait's own), ``True`` masks every value, ``False`` shows all.
    """
    if redact is False:
        return payload
    if redact:
        return redact_values(payload)
    if not isinstance(payload, dict) or not isinstance(payload.get("headers"), dict):
        return payload
    sensitive = SENSITIVE_HEADERS | secret_headers
    headers = {k: MASK if k.lower() in sensitive else v for k, v in payload["headers"].items()}
    return {**payload, "headers": headers}


def shown_event(event: Any, waits: Sequence[Wait], *, redact: bool | None) -> Any:
    """A callback event (``{type, timestamp, data}``) as the caller may see it.

    The resume payload it carries is masked like the wait's payload in ``includeData``; with
    ``redact`` the execution input it carries (a retry's ``data``) is masked too.
    """
    if redact is False or not isinstance(event, dict) or not isinstance(event.get("data"), dict):
        return event
    data = dict(event["data"])
    if "payload" in data:
        seq = data["wait"].get("seq") if isinstance(data.get("wait"), dict) else None
        webhook = next((w.webhook for w in waits if w.seq == seq), None)
        data["payload"] = shown_payload(
            data["payload"], redact=redact, secret_headers=caller_secret_headers(webhook)
        )
    if redact and "data" in data:
        data["data"] = redact_values(data["data"])
    return {**event, "data": data}


def redact_values(value: Any) -> Any:
    """The same shape with every leaf value masked (``null`` stays ``null``).

    Iterative, so data nested as deep as the JSON decoder allows cannot exhaust the stack.
    """
    pending: list[tuple[Any, Any]] = []
    root = _masked(value, pending)
    while pending:
        source, target = pending.pop()
        if isinstance(source, dict):
            for key, item in source.items():
                target[key] = _masked(item, pending)
        else:
            target.extend(_masked(item, pending) for item in source)
    return root


def _masked(value: Any, pending: list[tuple[Any, Any]]) -> Any:
    """An empty container to be filled later (queued in ``pending``), or the masked leaf."""
    if isinstance(value, dict | list):
        container: dict[str, Any] | list[Any] = {} if isinstance(value, dict) else []
        pending.append((value, container))
        return container
    return None if value is None else MASK


def shown_data(
    data: dict[str, Any],
    *,
    redact: bool | None,
    can_reveal: bool,
    secret_headers: Sequence[frozenset[str]] = (),
) -> dict[str, Any]:
    """The data as this caller may see it (``redact``: the ``redactExecutionData`` parameter)."""
    if redact is False:
        return data
    waits = [
        {
            **wait,
            "payload": shown_payload(
                wait.get("payload"),
                redact=redact,
                secret_headers=secret_headers[i] if i < len(secret_headers) else frozenset(),
            ),
        }
        for i, wait in enumerate(data.get("waits", []))
    ]
    if redact is None:
        return {**data, "waits": waits}
    return {
        **data,
        "input": redact_values(data.get("input")),
        "result": redact_values(data.get("result")),
        "error": redact_values(data.get("error")),
        "waits": waits,
        "redactionInfo": {
            "isRedacted": True,
            "reason": "redactExecutionData=true was asked for",
            "canReveal": can_reveal,
        },
    }


def too_large(data: dict[str, Any], max_bytes: int | None) -> bool:
    """Whether ``data`` encodes to more than ``max_bytes`` of JSON (``None``: no limit)."""
    return max_bytes is not None and len(msgspec.json.encode(data)) > max_bytes
