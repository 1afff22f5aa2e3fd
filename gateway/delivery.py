"""Delivering callbacks to the engine: Standard Webhooks signatures, retries, dead letters.

The dispatcher leases due deliveries from the outbox, sends them with bounded concurrency and a
per-request timeout, and records every attempt. A failure is retried with exponential backoff
and jitter until the delivery's maximum age; then it is dead. A lease that runs out (the process
died mid-delivery) makes the delivery due again, so every callback arrives at least once; its
``webhook-id`` never changes, so the engine can drop duplicates.

Every send error (a refused or invalid target, a timeout, any exception while building or
sending the request) is a failed attempt of that delivery and nothing else. The target's
origin is checked against the allow-list again at send time, the whole exchange has one
deadline, and at most 200 bytes of a failed answer are read and kept. Notifications (deliveries
with a ``channel``) are sent the same way by their channel's sender (``gateway.notify``).
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

from gateway import metrics, tracing
from gateway.clock import Clock
from gateway.notify import JSON, Notifier, post
from gateway.origins import CallbackOrigins, OriginRefused
from gateway.outbox_model import Delivery, DeliveryAttempt
from gateway.supervisor import Loop
from persistence.base import Store

log = logging.getLogger("waitgate.delivery")
MAX_ERROR_TEXT = 300


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


class Dispatcher(Loop):
    """Sends what the outbox holds; woken by ``notify`` when a transition adds to it."""

    name = "dispatcher"

    def __init__(
        self,
        store: Store,
        clock: Clock,
        http: httpx.AsyncClient,
        secret: bytes,
        policy: DeliveryPolicy,
        origins: CallbackOrigins,
        rng: random.Random | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        super().__init__()
        self.origins = origins
        self.notifier = notifier
        self._store = store
        self._clock = clock
        self._http = http
        self._secret = secret
        self._policy = policy
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._slots = asyncio.Semaphore(policy.concurrency)

    def notify(self) -> None:
        """Something was added to the outbox (or made due again)."""
        self.wake.set()

    async def run_due(self) -> int:
        """Send every delivery due now; how many attempts were made."""
        total = 0
        while not self.stopping:
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
            with tracing.delivery_attempt(delivery) as traced:
                attempt = await self._send(delivery)
                traced.done(attempt)
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
        started_at = self._clock.now_ms()
        started = time.perf_counter()
        status_code: int | None = None
        try:
            status_code, error = await self._post(delivery)
        except OriginRefused as exc:
            error = str(exc)
        except TimeoutError:
            error = f"no answer within {self._policy.timeout_ms / 1000:g} s"
        except Exception as exc:  # every send error is a failed attempt, nothing else
            error = f"{type(exc).__name__}: {exc}"
        latency = int((time.perf_counter() - started) * 1000)
        error = None if error is None else error[:MAX_ERROR_TEXT]
        return DeliveryAttempt(delivery.id, started_at, latency, status_code, error)

    async def _post(self, delivery: Delivery) -> tuple[int, str | None]:
        """Send the delivery (a notification by its channel, see ``gateway.notify``); its
        status code, and the error if it is not a 2xx."""
        timeout = self._policy.timeout_ms / 1000
        if delivery.channel is not None:
            if self.notifier is None:
                raise LookupError("no notifier to send notifications")
            return await self.notifier.send(
                delivery, timeout, lambda body: self._signed(delivery, body)
            )
        url = self.origins.check(delivery.target_url)
        body = msgspec.json.encode(delivery.payload)
        return await post(self._http, url, body, self._signed(delivery, body), timeout)

    def _signed(self, delivery: Delivery, body: bytes) -> dict[str, str]:
        """The Standard Webhooks headers of ``body`` sent as ``delivery``."""
        timestamp = self._clock.now_ms() // 1000
        return {
            **JSON,
            "webhook-id": delivery.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._secret, delivery.id, timestamp, body),
            **tracing.callback_headers(delivery),
        }

    async def step(self) -> int:
        """Send what is due, then sleep until the next delivery is due (or the safety net)."""
        await self.run_due()
        due = await self._store.next_delivery_due()
        sleep = self._policy.max_sleep_ms
        if due is not None:
            sleep = max(0, min(due - self._clock.now_ms(), sleep))
        return sleep
