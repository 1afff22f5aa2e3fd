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


CRASHES_ON_DEATH = frozenset({Event.RESUMED, Event.RETRY})
"""Events whose dead delivery leaves a running execution the engine never heard of."""


class DeliveryStatus(StrEnum):
    """Where a callback delivery stands."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


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


@dataclass(frozen=True)
class DeliveryAttempt:
    """One try to deliver a callback."""

    delivery_id: str
    attempted_at: int
    latency_ms: int
    status_code: int | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        """A 2xx answer."""
        return self.status_code is not None and 200 <= self.status_code < 300
