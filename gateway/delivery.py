"""Delivering callbacks to the engine: Standard Webhooks signatures, retries, dead letters.

The dispatcher leases deliveries from the outbox and sends each in its own task, at most
``concurrency`` at a time, with a per-request timeout, and records every attempt. A failure is
retried with exponential backoff and jitter until the delivery's maximum age; then it is dead.
A receiver that answers a non-2xx with ``webhook-delivery: abort-message`` (Svix's delivery
control) stops the retries: the delivery is ``aborted``. A lease that runs out (the process
died mid-delivery) makes the delivery due again, so every callback arrives at least once; its
``webhook-id`` never changes, so the engine can drop duplicates.

Each endpoint (``gateway.endpoints``) has a circuit breaker and a concurrency: the claim never
takes deliveries of an open endpoint, nor more of one endpoint than its concurrency, so a slow
or dead endpoint holds at most that many of the dispatcher's slots and never delays the others
(the loop claims again as soon as any attempt ends, never waiting for a whole batch).

Every send error (a refused or invalid target, a timeout, any exception while building or
sending the request) is a failed attempt of that delivery and nothing else. The target's
origin is checked against the allow-list again at send time, the whole exchange has one
deadline, and at most 200 bytes of a failed answer are read and kept. Notifications (deliveries
with a ``channel``) are sent the same way by their channel's sender (``gateway.notify``).
Deaths, aborts and breaker transitions are told to the operator's URL
(``WAITGATE_OPERATIONS_URL``) through the same outbox.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import msgspec

from gateway import metrics, tracing
from gateway.clock import Clock
from gateway.endpoints import Breaker, RateLimiter, Transition, endpoint_of
from gateway.notify import JSON, DeliveryAborted, Notifier, post
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


def signatures(secrets: Sequence[bytes], message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value signed with each secret (newest first), space
    separated as Standard Webhooks specifies, so receivers rotate secrets with no downtime."""
    return " ".join(sign(secret, message_id, timestamp, body) for secret in secrets)


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
    endpoint_concurrency: int = 4
    """Deliveries to one endpoint in flight at once, across replicas."""
    endpoint_rate: float = 0.0
    """Deliveries a second to one endpoint, per replica; 0: no limit."""
    breaker: Breaker = field(default_factory=Breaker)
    poll_ms: int = 500
    """How soon to look again when due deliveries wait for an endpoint's slot elsewhere."""

    @property
    def lease_ms(self) -> int:
        """How long a claimed delivery is ours: the timeout with a generous margin."""
        return 2 * self.timeout_ms + 1000

    def next_attempt_at(self, delivery: Delivery, now: int, rng: random.Random) -> int | None:
        """When to try again after a failure, or ``None`` if the maximum age would be passed
        (never for a probe: the time its endpoint was open is not held against it)."""
        ceiling = min(self.backoff_base_ms * 2 ** min(delivery.attempts, 30), self.backoff_max_ms)
        delay = int(rng.uniform(ceiling / 2, ceiling))
        if now + delay - delivery.window_start > self.max_age_ms and not delivery.probe:
            return None
        return now + delay


class Dispatcher(Loop):
    """Sends what the outbox holds; woken by ``notify`` when a transition adds to it, and by
    each attempt that ends."""

    name = "dispatcher"

    def __init__(
        self,
        store: Store,
        clock: Clock,
        http: httpx.AsyncClient,
        secrets: Sequence[bytes],
        policy: DeliveryPolicy,
        origins: CallbackOrigins,
        rng: random.Random | None = None,
        notifier: Notifier | None = None,
        operations_url: str | None = None,
    ) -> None:
        super().__init__()
        self.origins = origins
        self.notifier = notifier
        self.operations_url = operations_url
        self._store = store
        self._clock = clock
        self._http = http
        self._secrets = tuple(secrets)
        self._policy = policy
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._limiter = RateLimiter(policy.endpoint_rate)
        self._in_flight: set[asyncio.Task[None]] = set()

    def notify(self) -> None:
        """Something was added to the outbox (or made due again)."""
        self.wake.set()

    @property
    def in_flight(self) -> int:
        """How many attempts this process is making right now."""
        return len(self._in_flight)

    async def run_due(self) -> int:
        """Send every delivery due now and wait for those attempts; how many were made."""
        total = 0
        while not self.stopping:
            started = await self._start_due()
            if not started:
                break
            total += len(started)
            await asyncio.gather(*started)
        return total

    async def _start_due(self) -> list[asyncio.Task[None]]:
        """Claim what our free slots can take and start each attempt in its own task."""
        free = self._policy.concurrency - len(self._in_flight)
        if free <= 0:
            return []
        now = self._clock.now_ms()
        batch = await self._store.claim_deliveries(
            now,
            min(free, self._policy.batch_size),
            self._policy.lease_ms,
            self._policy.endpoint_concurrency,
        )
        started = []
        for delivery in batch:
            delay = self._limiter.delay_ms(self._endpoint(delivery), now)
            if delay and not delivery.probe:
                await self._store.defer_delivery(delivery.id, now + delay)
                continue
            task = asyncio.create_task(self._attempt(delivery), name=f"delivery-{delivery.id}")
            self._in_flight.add(task)
            task.add_done_callback(self._finished)
            started.append(task)
        return started

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self.wake.set()
        if not task.cancelled() and (exc := task.exception()) is not None:
            metrics.BACKGROUND_ERRORS.labels(self.name).inc()
            log.warning(
                "recording a delivery attempt failed (its lease will run out and it is retried):"
                " %s: %s",
                type(exc).__name__,
                exc,
                extra={"action": "background.error", "task": self.name},
            )

    @staticmethod
    def _endpoint(delivery: Delivery) -> str:
        return delivery.endpoint or endpoint_of(delivery.target_url, delivery.channel)

    async def _attempt(self, delivery: Delivery) -> None:
        with tracing.delivery_attempt(delivery) as traced:
            attempt = await self._send(delivery)
            traced.done(attempt)
        now = self._clock.now_ms()
        next_at = (
            None
            if attempt.succeeded or attempt.aborted
            else self._policy.next_attempt_at(delivery, now, self._rng)
        )
        endpoint = self._endpoint(delivery)
        transition = await self._store.record_attempt(
            attempt,
            next_attempt_at=next_at,
            now=now,
            endpoint=endpoint,
            breaker=self._policy.breaker,
            operations_url=self.operations_url,
        )
        extra = {
            "execution_id": delivery.execution_id,
            "delivery_id": delivery.id,
            "status_code": attempt.status_code,
            "endpoint": endpoint,
        }
        if attempt.succeeded:
            result = "delivered"
        elif attempt.aborted:
            result = "aborted"
        else:
            result = "failed" if next_at is not None else "dead"
        metrics.DELIVERIES.labels(result).inc()
        if attempt.succeeded:
            log.info("callback delivered", extra={"action": "delivery.delivered", **extra})
        elif result in {"dead", "aborted"}:
            log.error(
                f"callback {result}",
                extra={"action": f"delivery.{result}", "error": attempt.error, **extra},
            )
        else:
            log.warning(
                "callback failed",
                extra={"action": "delivery.failed", "error": attempt.error, **extra},
            )
        if transition is not None:
            metrics.BREAKER_TRANSITIONS.labels(transition.value).inc()
            level = logging.WARNING if transition is Transition.DISABLED else logging.INFO
            log.log(level, f"{transition.value}: {endpoint}", extra={"action": transition, **extra})

    async def _send(self, delivery: Delivery) -> DeliveryAttempt:
        started_at = self._clock.now_ms()
        started = time.perf_counter()
        status_code: int | None = None
        aborted = False
        try:
            status_code, error = await self._post(delivery)
        except DeliveryAborted as exc:
            status_code, error, aborted = exc.status_code, exc.error, True
        except OriginRefused as exc:
            error = str(exc)
        except TimeoutError:
            error = f"no answer within {self._policy.timeout_ms / 1000:g} s"
        except Exception as exc:  # every send error is a failed attempt, nothing else
            error = f"{type(exc).__name__}: {exc}"
        latency = int((time.perf_counter() - started) * 1000)
        error = None if error is None else error[:MAX_ERROR_TEXT]
        return DeliveryAttempt(delivery.id, started_at, latency, status_code, error, aborted)

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
        """The Standard Webhooks headers of ``body`` sent as ``delivery`` (signed with every
        callback secret)."""
        timestamp = self._clock.now_ms() // 1000
        return {
            **JSON,
            "webhook-id": delivery.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signatures(self._secrets, delivery.id, timestamp, body),
            **tracing.callback_headers(delivery),
        }

    async def step(self) -> int:
        """Start what is due, then sleep until the next delivery is due (or the safety net);
        an attempt that ends wakes the loop to claim again."""
        claimed_at = self._clock.now_ms()
        started = await self._start_due()
        due = await self._store.next_delivery_due()
        sleep = self._policy.max_sleep_ms
        if due is not None:
            sleep = max(0, min(due - self._clock.now_ms(), sleep))
        if sleep == 0 and not started and due is not None and due <= claimed_at:
            # due deliveries wait for a slot (ours, or their endpoint's elsewhere): an attempt
            # of ours that ends wakes the loop; another replica's lease is looked at again soon
            sleep = self._policy.poll_ms
        return sleep

    async def drain(self) -> None:
        """Let the attempts in flight end (they are cancelled if the loop is cancelled)."""
        tasks = list(self._in_flight)
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            raise
