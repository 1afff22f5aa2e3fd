"""The per-wait caller checks: Basic, a header, an HMAC of the raw body, IP allow-list, bots.

A failed check answers 401/403 and never uses up the wait (n8n's behaviour and wording).
Every comparison of a secret is constant-time.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping

from gateway.credentials import (
    ALGORITHMS,
    IP_REFUSED,
    REQUIRED,
    WRONG,
    any_equal,
    basic,
    equal,
    ip_allowed,
    stripe_parts,
)
from gateway.domain import Admission, CallerAuth, Refusal, WebhookSpec
from gateway.early import CallEvidence

BOTS = re.compile(
    r"bot|crawl|spider|slurp|preview|facebookexternalhit|embedly|quora link|whatsapp|"
    r"skypeuripreview|outlook|teams|slack|discord|telegram|linkedin|pinterest",
    re.IGNORECASE,
)


def _header(auth: CallerAuth, headers: Mapping[str, str]) -> Refusal | None:
    """n8n's header auth: 403 ``Authorization data is wrong!`` whether the header is missing
    or holds another value."""
    value = headers.get(auth.header.lower())
    return None if value is not None and equal(value, auth.secret) else Refusal(403, WRONG)


def _hmac(auth: CallerAuth, headers: Mapping[str, str], body: bytes, now: float) -> Refusal | None:
    value = headers.get(auth.header.lower())
    if value is None:
        return Refusal(401, REQUIRED)
    digest = ALGORITHMS[auth.algorithm]
    if auth.style == "stripe":
        parts = stripe_parts(value)
        if parts is None or abs(now - int(parts[0])) > auth.tolerance_seconds:
            return Refusal(403, WRONG)
        stamp, given = parts
        signed = stamp.encode() + b"." + body
    else:
        given = [value.removeprefix(auth.prefix) if value.startswith(auth.prefix) else ""]
        signed = body
    expected = hmac.new(auth.secret.encode(), signed, digest).hexdigest()
    matched = any_equal((candidate.lower() for candidate in given), [expected])
    return None if matched else Refusal(403, WRONG)


def checker(
    headers: Mapping[str, str], body: bytes, ip: str | None, now: float
) -> Callable[[WebhookSpec], Refusal | None]:
    """The check of one call, to run against whatever wait it turns out to name; ``now`` (Unix
    seconds) is the moment a Stripe-style timestamp is judged at."""

    def check(spec: WebhookSpec) -> Refusal | None:
        auth = spec.auth
        if auth.ignore_bots and BOTS.search(headers.get("user-agent", "")):
            return Refusal(403, "Link previews and bots may not resume this wait")
        if auth.allowed_ips and not ip_allowed(auth.allowed_ips, ip):
            return Refusal(403, IP_REFUSED)
        if auth.kind == "basic":
            return basic(headers, auth.username, auth.secret)
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
