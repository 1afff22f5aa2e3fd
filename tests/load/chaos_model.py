"""What the chaos harness plans, what its clients saw, and the figures it reports.

Shared by the driver (``tests.load.chaos``, ``tests.load.chaos_events``) and the checker
(``tests.load.chaos_check``).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

State = dict[str, Any]
Down = list[tuple[int, int]]
RESUMED, CANCELED = "execution.resumed", "execution.canceled"
SOURCE = "chaos"
"""The event source the harness creates and signs events for (Standard Webhooks)."""
EVENT_NAME = "order.paid"
"""The name every event condition asks for."""
ORDER_PATH = "order.id"
"""Where an event carries the order it is about; waits match their ``orderId`` there."""


def now_ms() -> int:
    return int(time.time() * 1000)


def ms(instant: str | None) -> int | None:
    if instant is None:
        return None
    return int(datetime.fromisoformat(instant.replace("Z", "+00:00")).timestamp() * 1000)


@dataclass
class Plan:
    """What the harness does to one execution: parked before the window (at a resume URL,
    a deadline, events about ``order``, or some of them), or, with ``lookback``, parked in
    the window only after the event about its ``order`` was acknowledged."""

    eid: int
    resume_url: str | None
    deadline: int | None
    calls: int
    stop: bool
    order: str | None = None
    lookback: bool = False


@dataclass
class Call:
    """One request and what came back: a status, or ``None`` when the connection was cut."""

    call_id: str
    status: int | None = None
    sent_at: int = 0
    answered_at: int = 0


@dataclass
class Delivery(Call):
    """One delivery of a signed event: ``{"matched": n}``, or a ``duplicate``."""

    matched: int | None = None
    duplicate: bool = False


@dataclass
class Park(Call):
    """A park in the window; ``running``: the answer says it resumed at once (lookback)."""

    running: bool = False


@dataclass
class Sent:
    """One provider event (one ``webhook-id``) and every delivery of it, redeliveries of a
    cut one included. ``targets``: the executions whose waits it matches (none for a stray);
    ``lookback``: sent before its target parks."""

    event_id: str
    order: str
    name: str = EVENT_NAME
    targets: tuple[int, ...] = ()
    lookback: bool = False
    deliveries: list[Delivery] = field(default_factory=list)


@dataclass
class Journal:
    """Everything the clients saw, per execution and per event, and when the gateway was down."""

    resumes: dict[int, list[Call]] = field(default_factory=dict)
    stops: dict[int, Call] = field(default_factory=dict)
    events: dict[str, Sent] = field(default_factory=dict)
    parks: dict[int, Park] = field(default_factory=dict)
    down: Down = field(default_factory=list)
    kills: int = 0


@dataclass
class ChaosReport:
    """The figures of one run and every invariant it found broken (none, when all is well)."""

    parked: int = 0
    resumed_by_webhook: int = 0
    resumed_by_timeout: int = 0
    resumed_by_event: int = 0
    acknowledged: int = 0
    duplicates_refused: int = 0
    unknown: int = 0
    unknown_committed: int = 0
    stops: int = 0
    kills_survived: int = 0
    timers_due_while_down: int = 0
    callbacks_received: int = 0
    callback_ids: int = 0
    events_sent: int = 0
    deliveries: int = 0
    deliveries_acknowledged: int = 0
    deliveries_duplicate: int = 0
    deliveries_unknown: int = 0
    kept_though_cut: int = 0
    events_fanned_out: int = 0
    applied_at_park: int = 0
    strays: int = 0
    lost: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0
    seed: int = 0

    def summary(self) -> str:
        """One paragraph of figures."""
        return (
            f"chaos: parked {self.parked}; resumed {self.resumed_by_webhook} by webhook, "
            f"{self.resumed_by_timeout} by timeout ({self.timers_due_while_down} timers fell "
            f"due while down), {self.resumed_by_event} by event ({self.events_fanned_out} "
            f"events fanned out to two waits, {self.applied_at_park} applied at park); "
            f"resume calls {self.acknowledged} acknowledged, "
            f"{self.duplicates_refused} refused (409), {self.unknown} unknown "
            f"(connection cut; {self.unknown_committed} had resumed); stops {self.stops}; "
            f"events {self.events_sent} ({self.strays} matching nothing) in "
            f"{self.deliveries} deliveries: {self.deliveries_acknowledged} acknowledged, "
            f"{self.deliveries_duplicate} of them duplicates, "
            f"{self.deliveries_unknown} unanswered and delivered again ({self.kept_though_cut} "
            f"events kept though their answer was cut: only duplicates answered); "
            f"kills survived {self.kills_survived}; "
            f"callbacks received {self.callbacks_received}, distinct ids {self.callback_ids}; "
            f"answers {dict(self.statuses)}; lost {self.lost}; violations "
            f"{len(self.violations)}; {self.seconds:.1f} s (seed {self.seed})"
        )


async def request(http: httpx.AsyncClient, call: Call, method: str, url: str, **kw: Any) -> Any:
    """Send, recording the status (and returning the JSON answer), or nothing (unknown) if
    the connection failed."""
    call.sent_at = now_ms()
    try:
        response = await http.request(method, url, **kw)
    except httpx.TransportError:
        return None
    finally:
        call.answered_at = now_ms()
    call.status = response.status_code
    try:
        return response.json()
    except ValueError:
        return None


def wait_of(state: State) -> dict[str, Any]:
    """The (first and only) wait of an execution's API answer, ``{}`` if it has none."""
    waits: list[dict[str, Any]] = state.get("data", {}).get("waits", [])
    return waits[0] if waits else {}
