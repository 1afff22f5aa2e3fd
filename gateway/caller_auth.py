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
import time
from collections.abc import Callable, Mapping

from gateway.domain import CallerAuth, Refusal, WebhookSpec

REALM = {"WWW-Authenticate": 'Basic realm="Webhook"'}
REQUIRED = "Authorization is required!"
WRONG = "Authorization data is wrong!"
ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
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


def _hmac(auth: CallerAuth, headers: Mapping[str, str], body: bytes, now: float) -> Refusal | None:
    value = headers.get(auth.header.lower())
    if value is None:
        return Refusal(401, REQUIRED)
    digest = ALGORITHMS[auth.algorithm]
    if auth.style == "stripe":
        parts = dict(p.split("=", 1) for p in value.split(",") if "=" in p)
        stamp, given = parts.get("t", ""), parts.get("v1", "")
        if not stamp.isdigit() or abs(now - int(stamp)) > auth.tolerance_seconds:
            return Refusal(403, WRONG)
        signed = stamp.encode() + b"." + body
    else:
        given = value.removeprefix(auth.prefix) if value.startswith(auth.prefix) else ""
        signed = body
    expected = hmac.new(auth.secret.encode(), signed, digest).hexdigest()
    return None if _equal(given.lower(), expected) else Refusal(403, WRONG)


def _ip_allowed(allowed: tuple[str, ...], ip: str | None) -> bool:
    if ip is None:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in allowed)


def checker(
    headers: Mapping[str, str], body: bytes, ip: str | None, now: float | None = None
) -> Callable[[WebhookSpec], Refusal | None]:
    """The check of one call, to run against whatever wait it turns out to name."""
    moment = time.time() if now is None else now

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
            return _hmac(auth, headers, body, moment)
        return None

    return check
