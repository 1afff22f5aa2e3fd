"""What of an execution's data is shown: secrets masked, values redacted, size limited.

By default the headers that carry credentials (``authorization``, ``cookie`` …) are masked in
every stored resume payload. ``redactExecutionData=true`` masks every value (keeping the shape);
``false`` reveals everything, for callers with ``execution:reveal``.
"""

from __future__ import annotations

from typing import Any

import msgspec

MASK = "**redacted**"
SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-n8n-api-key",
        "x-api-key",
        "x-auth-token",
        "x-hub-signature",
        "x-hub-signature-256",
        "stripe-signature",
        "webhook-signature",
    }
)


def mask_headers(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with credential headers of every wait payload masked."""
    return {**data, "waits": [_mask_wait(wait) for wait in data.get("waits", [])]}


def _mask_wait(wait: dict[str, Any]) -> dict[str, Any]:
    payload = wait.get("payload")
    if not isinstance(payload, dict) or not isinstance(payload.get("headers"), dict):
        return wait
    headers = {
        k: MASK if k.lower() in SENSITIVE_HEADERS else v for k, v in payload["headers"].items()
    }
    return {**wait, "payload": {**payload, "headers": headers}}


def redact_values(value: Any) -> Any:
    """The same shape with every leaf value masked."""
    if isinstance(value, dict):
        return {k: redact_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_values(v) for v in value]
    return None if value is None else MASK


def shown_data(data: dict[str, Any], *, redact: bool | None, can_reveal: bool) -> dict[str, Any]:
    """The data as this caller may see it (``redact``: the ``redactExecutionData`` parameter)."""
    if redact is False:
        return data
    masked = mask_headers(data)
    if redact is None:
        return masked
    waits = [{**w, "payload": redact_values(w.get("payload"))} for w in masked.get("waits", [])]
    return {
        **masked,
        "input": redact_values(masked.get("input")),
        "result": redact_values(masked.get("result")),
        "error": redact_values(masked.get("error")),
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
