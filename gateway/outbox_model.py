"""What the outbox holds: the events a delivery tells its target, and deliveries and their
attempts (callbacks to the engine and notifications through channels)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gateway.domain import JSON
from gateway.trace_context import TraceContext


class Event(StrEnum):
    """What a callback tells the engine."""

    RESUMED = "execution.resumed"
    RETRY = "execution.retry"
    CANCELED = "execution.canceled"
    APPROVAL_REQUESTED = "approval.requested"
    """A notification of the approvers, sent through a channel (``gateway.channels``)."""
    DELIVERY_EXHAUSTED = "delivery.exhausted"
    """Operational (to ``WAITGATE_OPERATIONS_URL``): a delivery died or was aborted."""
    ENDPOINT_DISABLED = "endpoint.disabled"
    """Operational: an endpoint's breaker opened."""
    ENDPOINT_RECOVERED = "endpoint.recovered"
    """Operational: an endpoint's breaker closed after a probe."""


OPERATIONAL = frozenset(
    {Event.DELIVERY_EXHAUSTED, Event.ENDPOINT_DISABLED, Event.ENDPOINT_RECOVERED}
)
"""Events for the operator, not the engine: they never cause operational events themselves."""


CRASHES_ON_DEATH = frozenset({Event.RESUMED, Event.RETRY})
"""Events whose dead (or aborted) delivery leaves a running execution the engine never heard
of."""

ABORT_HEADER = "webhook-delivery"
ABORT_VALUE = "abort-message"
"""A receiver stops the retries of one delivery by answering a non-2xx status with this header
(Svix's delivery control); the delivery is then ``aborted``."""


class DeliveryStatus(StrEnum):
    """Where a callback delivery stands."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"
    ABORTED = "aborted"
    """The receiver asked to stop retrying (``ABORT_HEADER``)."""


@dataclass(frozen=True)
class Delivery:
    """One event for the engine in the outbox; its id is the stable ``webhook-id``."""

    id: str
    execution_id: int
    event: Event
    target_url: str
    payload: JSON
    status: DeliveryStatus
    attempts: int
    created_at: int
    window_start: int
    next_attempt_at: int
    delivered_at: int | None = None
    last_error: str | None = None
    channel: str | None = None
    """The channel that sends it (a notification); ``None``: a callback to the engine."""
    trace: TraceContext | None = None
    """The trace context the callback continues (``gateway.trace_context``)."""
    endpoint: str = ""
    """Where it goes (``gateway.endpoints.endpoint_of``); '' if written before endpoints."""
    probe: bool = False
    """Claimed as its endpoint's half-open probe (a property of the claim, not stored)."""


@dataclass(frozen=True)
class DeliveryAttempt:
    """One try to deliver a callback."""

    delivery_id: str
    attempted_at: int
    latency_ms: int
    status_code: int | None = None
    error: str | None = None
    aborted: bool = False
    """The receiver answered with ``ABORT_HEADER``: no more retries."""

    @property
    def succeeded(self) -> bool:
        """A 2xx answer."""
        return self.status_code is not None and 200 <= self.status_code < 300
