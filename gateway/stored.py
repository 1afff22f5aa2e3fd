"""Bounds on what is kept of a caller's request: header values and audit rows.

Callers choose their headers, and most of what the audit trail says about a call. What the
gateway stores of them is cut to fixed sizes, and each execution keeps only its most recent
audit rows, so no run of calls (signed or not) can grow the database without bound.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from gateway.domain import ResumeAttempt

MAX_HEADER_NAME = 256
MAX_HEADER_VALUE = 8 * 1024
MAX_HEADERS_TOTAL = 64 * 1024
"""Names plus values of the headers kept of one call; the rest are left out (and counted)."""
MAX_AUDIT_TEXT = 1024
"""The user agent and the reason of an audit row."""
MAX_AUDIT_IP = 128
MAX_AUDIT_METHOD = 16
AUDIT_ROWS_KEPT = 200
"""Audit rows kept per execution and outcome (accepted, refused, shown): the most recent."""
TRUNCATED = "...[truncated]"
LEFT_OUT = "x-waitgate-headers-left-out"


def clip(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else its start ending in a marker."""
    if len(text) <= limit:
        return text
    return text[: limit - len(TRUNCATED)] + TRUNCATED


def clip_optional(text: str | None, limit: int) -> str | None:
    """``clip`` for a value that may be missing."""
    return None if text is None else clip(text, limit)


def clip_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Header pairs with each name and value clipped, up to ``MAX_HEADERS_TOTAL`` characters;
    a last ``x-waitgate-headers-left-out`` pair counts the headers that did not fit."""
    kept: list[tuple[str, str]] = []
    total = left_out = 0
    for name, value in headers:
        pair = (clip(name, MAX_HEADER_NAME), clip(value, MAX_HEADER_VALUE))
        size = len(pair[0]) + len(pair[1])
        if total + size > MAX_HEADERS_TOTAL:
            left_out += 1
            continue
        total += size
        kept.append(pair)
    if left_out:
        kept.append((LEFT_OUT, str(left_out)))
    return kept


def clip_attempt(attempt: ResumeAttempt) -> ResumeAttempt:
    """An audit row with every caller-controlled text bounded (the row itself when all fit)."""
    method = clip(attempt.method, MAX_AUDIT_METHOD)
    reason = clip(attempt.reason, MAX_AUDIT_TEXT)
    ip = clip_optional(attempt.ip, MAX_AUDIT_IP)
    user_agent = clip_optional(attempt.user_agent, MAX_AUDIT_TEXT)
    if (
        method is attempt.method
        and reason is attempt.reason
        and ip is attempt.ip
        and user_agent is attempt.user_agent
    ):
        return attempt
    return dataclasses.replace(attempt, method=method, reason=reason, ip=ip, user_agent=user_agent)
