"""The per-wait caller checks: Basic, a header, an HMAC of the raw body, IP allow-list, bots.

A failed check answers 401/403 and never uses up the wait (n8n's behaviour and wording).
Every comparison of a secret is constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

from gateway.domain import Admission, CallerAuth, HmacAlgorithm, Refusal, WebhookSpec
from gateway.early import CallEvidence

REALM = {"WWW-Authenticate": 'Basic realm="Webhook"'}
REQUIRED = "Authorization is required!"
WRONG = "Authorization data is wrong!"
ALGORITHMS: dict[HmacAlgorithm, Callable[[], Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}
BOTS = re.compile(
    r"bot|crawl|spider|slurp|preview|facebookexternalhit|embedly|quora link|whatsapp|"
    r"skypeuripreview|outlook|teams|slack|discord|telegram|linkedin|pinterest",
    re.IGNORECASE,
)


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _basic(auth: CallerAuth, headers: Mapping[str, str]) -> Refusal | None:
    scheme, _, encoded = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return Refusal(401, REQUIRED, REALM)
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return Refusal(403, WRONG)
    if not (_equal(user, auth.username) & _equal(password, auth.secret)):
        return Refusal(403, WRONG)
    return None


def _header(auth: CallerAuth, headers: Mapping[str, str]) -> Refusal | None:
    value = headers.get(auth.header.lower())
    if value is None:
        return Refusal(403, REQUIRED)
    return None if _equal(value, auth.secret) else Refusal(403, WRONG)


MAX_STAMP_DIGITS = 12
"""A Unix time in seconds has 10 digits until the year 2286; longer is not a timestamp."""


def _stripe_parts(value: str) -> tuple[str, list[str]] | None:
    """``t`` and every ``v1`` of ``t=<unix>,v1=<hex>[,v1=<hex>…]``; ``None`` if malformed
    (a part without ``=``, no or two ``t``, no ``v1``, a ``t`` that is not a short number)."""
    stamp: str | None = None
    signatures: list[str] = []
    for part in value.split(","):
        key, equals, text = part.strip().partition("=")
        if not equals or (key == "t" and stamp is not None):
            return None
        if key == "t":
            stamp = text
        elif key == "v1":
            signatures.append(text)
    if stamp is None or not signatures or len(stamp) > MAX_STAMP_DIGITS:
        return None
    if not (stamp.isascii() and stamp.isdigit()):
        return None
    return stamp, signatures


def _hmac(auth: CallerAuth, headers: Mapping[str, str], body: bytes, now: float) -> Refusal | None:
    value = headers.get(auth.header.lower())
    if value is None:
        return Refusal(401, REQUIRED)
    digest = ALGORITHMS[auth.algorithm]
    if auth.style == "stripe":
        parts = _stripe_parts(value)
        if parts is None or abs(now - int(parts[0])) > auth.tolerance_seconds:
            return Refusal(403, WRONG)
        stamp, given = parts
        signed = stamp.encode() + b"." + body
    else:
        given = [value.removeprefix(auth.prefix) if value.startswith(auth.prefix) else ""]
        signed = body
    expected = hmac.new(auth.secret.encode(), signed, digest).hexdigest()
    matched = False
    for candidate in given:  # every candidate is compared: the time taken tells nothing
        matched |= _equal(candidate.lower(), expected)
    return None if matched else Refusal(403, WRONG)


def _ip_allowed(allowed: tuple[str, ...], ip: str | None) -> bool:
    if ip is None:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in allowed)


def checker(
    headers: Mapping[str, str], body: bytes, ip: str | None, now: float
) -> Callable[[WebhookSpec], Refusal | None]:
    """The check of one call, to run against whatever wait it turns out to name; ``now`` (Unix
    seconds) is the moment a Stripe-style timestamp is judged at."""

    def check(spec: WebhookSpec) -> Refusal | None:
        auth = spec.auth
        if auth.ignore_bots and BOTS.search(headers.get("user-agent", "")):
            return Refusal(403, "Link previews and bots may not resume this wait")
        if auth.allowed_ips and not _ip_allowed(auth.allowed_ips, ip):
            return Refusal(403, "IP is not allowed to access the webhook!")
        if auth.kind == "basic":
            return _basic(auth, headers)
        if auth.kind == "header":
            return _header(auth, headers)
        if auth.kind == "hmac":
            return _hmac(auth, headers, body, now)
        return None

    return check


def kept_checker(evidence: CallEvidence, at_ms: int) -> Admission:
    """The check of a call kept before its wait was parked, judged at ``at_ms``; its headers
    are looked up as a request's are: by lower-case name, the first one sent."""
    headers = {name.lower(): value for name, value in reversed(evidence.headers)}
    return checker(headers, evidence.body, evidence.ip, at_ms / 1000)
