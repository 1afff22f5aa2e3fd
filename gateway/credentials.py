"""Building blocks shared by the per-wait caller checks and the event-source verification.

n8n's wording of a refusal, constant-time comparison, the Stripe-style signature header and
the IP allow-list: written once, so both checks refuse the same input the same way.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from gateway.domain import HmacAlgorithm, Refusal

REALM = {"WWW-Authenticate": 'Basic realm="Webhook"'}
REQUIRED = "Authorization is required!"
WRONG = "Authorization data is wrong!"
IP_REFUSED = "IP is not allowed to access the webhook!"
ALGORITHMS: dict[HmacAlgorithm, Callable[[], Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}

MAX_STAMP_DIGITS = 12
"""A Unix time in seconds has 10 digits until the year 2286; longer is not a timestamp."""
MAX_SIGNATURES = 32
"""More candidate signatures than this in one header is not a provider's rotation overlap."""


def required(headers: dict[str, str] | None = None) -> Refusal:
    """401: the credential is missing."""
    return Refusal(401, REQUIRED, dict(headers or {}))


def wrong() -> Refusal:
    """403: the credential is there but does not check out."""
    return Refusal(403, WRONG)


def equal(a: str, b: str) -> bool:
    """Constant-time comparison of two texts (any characters)."""
    return hmac.compare_digest(a.encode(), b.encode())


def any_equal(candidates: Iterable[str], expected: Iterable[str]) -> bool:
    """Whether any candidate equals any expected value; every pair is compared, so the time
    taken tells nothing about which one matched (or how close one came)."""
    wanted = list(expected)
    matched = False
    for candidate in candidates:
        for value in wanted:
            matched |= equal(candidate, value)
    return matched


def basic(headers: Mapping[str, str], username: str, password: str) -> Refusal | None:
    """HTTP Basic: 401 (with the realm) when no Basic credentials came, 403 when they are not
    ``username`` and ``password``; both halves are always compared."""
    scheme, _, encoded = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return required(REALM)
    try:
        user, _, given = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return wrong()
    if not (equal(user, username) & equal(given, password)):
        return wrong()
    return None


def stamp(text: str) -> int | None:
    """A Unix time in seconds written as ASCII digits, at most ``MAX_STAMP_DIGITS`` long;
    ``None`` for anything else (signs, spaces, non-ASCII digits, 5,000 digits)."""
    if not text or len(text) > MAX_STAMP_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def fresh(text: str, now: float, tolerance_seconds: int) -> bool:
    """Whether ``text`` is a timestamp within ``tolerance_seconds`` of ``now``, either way."""
    value = stamp(text)
    return value is not None and abs(now - value) <= tolerance_seconds


def stripe_parts(value: str) -> tuple[str, list[str]] | None:
    """``t`` and every ``v1`` of ``t=<unix>,v1=<hex>[,v1=<hex>…]``; ``None`` if malformed
    (a part without ``=``, no or two ``t``, no ``v1`` or too many, a ``t`` that is not a
    short number)."""
    found: str | None = None
    signatures: list[str] = []
    for part in value.split(","):
        key, equals, text = part.strip().partition("=")
        if not equals or (key == "t" and found is not None):
            return None
        if key == "t":
            found = text
        elif key == "v1":
            signatures.append(text)
    if found is None or not signatures or len(signatures) > MAX_SIGNATURES:
        return None
    if stamp(found) is None:
        return None
    return found, signatures


def ip_allowed(allowed: Iterable[str], ip: str | None) -> bool:
    """Whether ``ip`` lies in one of the ``allowed`` networks (CIDR or single addresses)."""
    if ip is None:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in allowed)
