"""What of an execution's data is shown: secrets masked, values redacted, size limited.

By default the headers that carry credentials (``authorization``, ``cookie`` …, and the header
a wait's own header or HMAC caller check reads) are masked in every stored resume payload: the
value becomes ``"**redacted**"``, the name stays. ``redactExecutionData=true`` masks every value
(keeping the shape) and says so in ``redactionInfo``; ``false`` reveals everything, for callers
with ``execution:reveal``. Data whose JSON is larger than the display limit is not shown at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from gateway.domain import WebhookSpec

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


def caller_secret_headers(webhook: WebhookSpec | None) -> frozenset[str]:
    """The header a wait's own caller check reads (header or HMAC auth), lower-cased."""
    if webhook is None or webhook.auth.kind not in {"header", "hmac"} or not webhook.auth.header:
        return frozenset()
    return frozenset({webhook.auth.header.lower()})


def mask_headers(
    data: dict[str, Any], secret_headers: Sequence[frozenset[str]] = ()
) -> dict[str, Any]:
    """``data`` with credential headers of every wait payload masked.

    ``secret_headers[i]`` names further headers to mask in the payload of wait ``i``.
    """
    waits = []
    for i, wait in enumerate(data.get("waits", [])):
        extra = secret_headers[i] if i < len(secret_headers) else frozenset()
        waits.append(_mask_wait(wait, SENSITIVE_HEADERS | extra))
    return {**data, "waits": waits}


def _mask_wait(wait: dict[str, Any], sensitive: frozenset[str]) -> dict[str, Any]:
    payload = wait.get("payload")
    if not isinstance(payload, dict) or not isinstance(payload.get("headers"), dict):
        return wait
    headers = {k: MASK if k.lower() in sensitive else v for k, v in payload["headers"].items()}
    return {**wait, "payload": {**payload, "headers": headers}}


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
    masked = mask_headers(data, secret_headers)
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
