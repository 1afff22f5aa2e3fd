"""Endpoints: where deliveries go, each with its circuit breaker, concurrency and rate limit.

An endpoint is a callback URL's origin (``scheme://host:port``, as ``gateway.origins`` writes
it), or ``channel:<name>`` for a channel's notifications. Its breaker is stored (table
``endpoints``), so every replica and every restart sees the same state:

- ``closed``: deliveries flow, at most ``concurrency`` at a time across all replicas (leased
  deliveries count), and at most ``rate`` a second per replica if a rate is set;
- ``open``: after ``threshold`` consecutive failed attempts the endpoint is paused for
  ``cooldown_ms``; none of its deliveries is claimed (nothing is dropped: they wait), so it holds
  none of the dispatcher's slots;
- ``half_open``: once the cool-down is over, one replica takes the probe (one conditional
  write on the endpoint's row) and sends one delivery; its outcome decides: a success (or an
  abort answer: the receiver is up) closes the breaker, a failure opens it for another
  cool-down.

The time an endpoint was open does not count towards its deliveries' maximum age
(``WAITGATE_CALLBACK_MAX_AGE``): when it closes, its pending deliveries' windows move forward by
that time, and a failed probe never kills its delivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gateway.origins import origin_of

CHANNEL_PREFIX = "channel:"


class EndpointState(StrEnum):
    """Where an endpoint's breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Transition(StrEnum):
    """A change of a breaker the operator is told about (an operational event's type)."""

    DISABLED = "endpoint.disabled"
    RECOVERED = "endpoint.recovered"


@dataclass(frozen=True)
class Breaker:
    """When an endpoint's breaker opens, and for how long."""

    threshold: int = 5
    """Consecutive failed attempts that open it."""
    cooldown_ms: int = 60_000
    """How long it stays open before one probe is sent."""


@dataclass(frozen=True)
class Endpoint:
    """An endpoint's state and its deliveries counted by status."""

    endpoint: str
    state: EndpointState
    consecutive_failures: int
    last_success_at: int | None
    last_failure_at: int | None
    open_until: int | None
    opened_at: int | None
    pending: int = 0
    delivered: int = 0
    dead: int = 0
    aborted: int = 0


def endpoint_of(target_url: str, channel: str | None) -> str:
    """The endpoint of a delivery to ``target_url`` (sent by ``channel``, if any)."""
    if channel is not None:
        return CHANNEL_PREFIX + channel
    try:
        return origin_of(target_url)
    except ValueError:
        return target_url


class RateLimiter:
    """At most ``rate`` starts a second per endpoint in this process (a token bucket holding one
    second's worth, at least one); ``rate`` 0 turns it off."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._buckets: dict[str, tuple[float, int]] = {}

    def delay_ms(self, endpoint: str, now_ms: int) -> int:
        """Take a token for ``endpoint`` at ``now_ms`` if one is there (0); else how long until
        one is."""
        if self._rate <= 0:
            return 0
        capacity = max(1.0, self._rate)
        tokens, then = self._buckets.get(endpoint, (capacity, now_ms))
        tokens = min(capacity, tokens + max(0, now_ms - then) / 1000 * self._rate)
        if tokens >= 1:
            self._buckets[endpoint] = (tokens - 1, now_ms)
            return 0
        self._buckets[endpoint] = (tokens, now_ms)
        return max(1, int((1 - tokens) / self._rate * 1000))
