"""Delivering callbacks to the engine: Standard Webhooks signatures, retries, dead letters.

The dispatcher leases due deliveries from the outbox, sends them with bounded concurrency and a
per-request timeout, and records every attempt. A failure is retried with exponential backoff
and jitter until the delivery's maximum age; then it is dead. A lease that runs out (the process
died mid-delivery) makes the delivery due again, so every callback arrives at least once; its
``webhook-id`` never changes, so the engine can drop duplicates.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import random
import time
from dataclasses import dataclass

import httpx
import msgspec

from gateway import metrics
from gateway.clock import Clock
from gateway.domain import Delivery, DeliveryAttempt
from gateway.errors import StoreError
from persistence.base import Store

log = logging.getLogger("waitgate.delivery")
RETRY_AFTER_ERROR_MS = 1000
MAX_ERROR_TEXT = 500


def sign(secret: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value (``v1,<base64 HMAC-SHA256>``)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard the dispatcher tries."""

    timeout_ms: int = 10_000
    max_age_ms: int = 24 * 3600 * 1000
    concurrency: int = 16
    backoff_base_ms: int = 1000
    backoff_max_ms: int = 600_000
    batch_size: int = 100
    max_sleep_ms: int = 10_000

    @property
    def lease_ms(self) -> int:
        """How long a claimed delivery is ours: the timeout with a generous margin."""
        return 2 * self.timeout_ms + 1000

    def next_attempt_at(self, delivery: Delivery, now: int, rng: random.Random) -> int | None:
        """When to try again after a failure, or ``None`` if the maximum age would be passed."""
        ceiling = min(self.backoff_base_ms * 2 ** min(delivery.attempts, 30), self.backoff_max_ms)
        delay = int(rng.uniform(ceiling / 2, ceiling))
        if now + delay - delivery.window_start > self.max_age_ms:
            return None
        return now + delay


class Dispatcher:
    """Sends what the outbox holds; woken by ``notify`` when a transition adds to it."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        http: httpx.AsyncClient,
        secret: bytes,
        policy: DeliveryPolicy,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._http = http
        self._secret = secret
        self._policy = policy
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(policy.concurrency)
        self._stopping = False

    def notify(self) -> None:
        """Something was added to the outbox (or made due again)."""
        self._wake.set()

    async def run_due(self) -> int:
        """Send every delivery due now; how many attempts were made."""
        total = 0
        while not self._stopping:
            now = self._clock.now_ms()
            batch = await self._store.claim_deliveries(
                now, self._policy.batch_size, self._policy.lease_ms
            )
            await asyncio.gather(*(self._attempt(d) for d in batch))
            total += len(batch)
            if len(batch) < self._policy.batch_size:
                break
        return total

    async def _attempt(self, delivery: Delivery) -> None:
        async with self._slots:
            attempt = await self._send(delivery)
        now = self._clock.now_ms()
        next_at = (
            None if attempt.succeeded else self._policy.next_attempt_at(delivery, now, self._rng)
        )
        await self._store.record_attempt(attempt, next_attempt_at=next_at, now=now)
        extra = {
            "execution_id": delivery.execution_id,
            "delivery_id": delivery.id,
            "status_code": attempt.status_code,
        }
        result = "delivered" if attempt.succeeded else "failed" if next_at is not None else "dead"
        metrics.DELIVERIES.labels(result).inc()
        if attempt.succeeded:
            log.info("callback delivered", extra={"action": "delivery.delivered", **extra})
        elif next_at is None:
            log.error(
                "callback dead", extra={"action": "delivery.dead", "error": attempt.error, **extra}
            )
        else:
            log.warning(
                "callback failed",
                extra={"action": "delivery.failed", "error": attempt.error, **extra},
            )

    async def _send(self, delivery: Delivery) -> DeliveryAttempt:
        body = msgspec.json.encode(delivery.payload)
        timestamp = self._clock.now_ms() // 1000
        headers = {
            "content-type": "application/json",
            "user-agent": "waitgate",
            "webhook-id": delivery.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._secret, delivery.id, timestamp, body),
        }
        started_at = self._clock.now_ms()
        started = time.perf_counter()
        status_code: int | None = None
        error: str | None = None
        try:
            response = await self._http.post(
                delivery.target_url,
                content=body,
                headers=headers,
                timeout=self._policy.timeout_ms / 1000,
                follow_redirects=False,
            )
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"answered {status_code}: {response.text[:MAX_ERROR_TEXT]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_TEXT]
        latency = int((time.perf_counter() - started) * 1000)
        return DeliveryAttempt(delivery.id, started_at, latency, status_code, error)

    async def run(self) -> None:
        """The loop; returns after ``stop``."""
        while not self._stopping:
            self._wake.clear()
            try:
                await self.run_due()
                due = await self._store.next_delivery_due()
            except StoreError as exc:
                log.warning(
                    "dispatcher could not reach the store: %s",
                    exc,
                    extra={"action": "delivery.store_error"},
                )
                await self._clock.wait(self._wake, RETRY_AFTER_ERROR_MS)
                continue
            sleep = self._policy.max_sleep_ms
            if due is not None:
                sleep = max(0, min(due - self._clock.now_ms(), sleep))
            await self._clock.wait(self._wake, sleep)

    def stop(self) -> None:
        """Ask the loop to end after its current step."""
        self._stopping = True
        self._wake.set()
