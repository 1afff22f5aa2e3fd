"""Abuse resistance: token-bucket rate limits per client IP.

Failed signature checks are limited per client IP and per execution (a wrong signature costs a
token, a valid call costs nothing and is never refused), so guessing signatures is slow however
it is spread, and nobody can lock a signed URL's holder out by sending junk. The
API may be limited per client IP too. Limits are per process; an answer over the limit is 429
with ``Retry-After``. The client IP is ``gateway.http.client_address`` (behind a reverse proxy,
the address it forwarded, believed only from ``WAITGATE_TRUSTED_PROXIES``).
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections import OrderedDict
from collections.abc import Sequence

from gateway import metrics
from gateway.clock import Clock
from gateway.http import ApiError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_TRACKED = 100_000


class RateLimiter:
    """``per_minute`` tokens a minute per key, up to ``per_minute`` saved up; 0 turns it off."""

    def __init__(self, clock: Clock, per_minute: int, name: str = "limit") -> None:
        self._clock = clock
        self.name = name
        self._rate = per_minute / 60_000  # tokens per ms
        self._burst = float(per_minute)
        self._buckets: OrderedDict[str, tuple[float, int]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        """Whether any limit applies."""
        return self._burst > 0

    def _level(self, key: str, now: int) -> float:
        tokens, at = self._buckets.get(key, (self._burst, now))
        return min(self._burst, tokens + (now - at) * self._rate)

    def retry_after(self, key: str) -> int:
        """0 if ``key`` has a token left, else the seconds until it has one."""
        if not self.enabled:
            return 0
        level = self._level(key, self._clock.now_ms())
        if level >= 1:
            return 0
        return max(1, math.ceil((1 - level) / self._rate / 1000))

    def spend(self, key: str) -> None:
        """Take one token from ``key``."""
        if not self.enabled:
            return
        now = self._clock.now_ms()
        self._buckets[key] = (self._level(key, now) - 1, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > MAX_TRACKED:
            self._buckets.popitem(last=False)

    def check(self, *keys: str) -> None:
        """A 429 if any of ``keys`` has no token left."""
        wait = max((self.retry_after(k) for k in keys), default=0)
        if wait:
            metrics.RATE_LIMITED.labels(self.name).inc()
            raise ApiError(
                429,
                "Too many requests; try again later",
                headers={"Retry-After": str(wait)},
            )


def networks(values: Sequence[str]) -> tuple[Network, ...]:
    """CIDRs (or single addresses) as networks."""
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip())


class Limits:
    """The gateway's limits."""

    def __init__(
        self,
        clock: Clock,
        *,
        bad_signatures_per_ip: int,
        bad_signatures_per_execution: int,
        api_per_ip: int,
    ) -> None:
        self.bad_signature_ip = RateLimiter(clock, bad_signatures_per_ip, "bad_signature_ip")
        self.bad_signature_execution = RateLimiter(
            clock, bad_signatures_per_execution, "bad_signature_execution"
        )
        self.api = RateLimiter(clock, api_per_ip, "api")

    def signature_failed(self, ip: str | None, execution_id: int) -> None:
        """A failed signature check: 429 if this address or this execution has used up its
        failed checks, otherwise one is counted against each (the caller answers 401)."""
        self._failed(ip, f"execution:{execution_id}")

    def inbox_signature_failed(self, ip: str | None, project: str | None, approver: str) -> None:
        """A failed inbox link check: as ``signature_failed``, with the inbox (the project and
        approver it names) charged in place of an execution, on the same budget."""
        self._failed(ip, "inbox:" + json.dumps([project, approver]))

    def _failed(self, ip: str | None, target_key: str) -> None:
        ip_key = f"ip:{ip}"
        self.bad_signature_ip.check(ip_key)
        self.bad_signature_execution.check(target_key)
        self.bad_signature_ip.spend(ip_key)
        self.bad_signature_execution.spend(target_key)

    def verification_failed(self, ip: str | None) -> None:
        """A signed call whose verification failed that names no execution (an event its
        source refused, a Slack button press): 429 if this address has used up its failed
        checks (the same budget as bad resume URL signatures), else one is counted."""
        ip_key = f"ip:{ip}"
        self.bad_signature_ip.check(ip_key)
        self.bad_signature_ip.spend(ip_key)

    def api_call(self, ip: str | None) -> None:
        """429 if this address has used up its API calls; otherwise spend one."""
        if not self.api.enabled:
            return
        key = f"ip:{ip}"
        self.api.check(key)
        self.api.spend(key)
