"""Endpoints in the store: the claim that honours each breaker and concurrency, each breaker's
transitions, the endpoints' view and bulk recovery (see ``gateway.endpoints``).

Claims lock an endpoint's row before counting its deliveries in flight (on PostgreSQL; SQLite
runs one writer), always in the order of the endpoints' names, so replicas neither exceed an
endpoint's concurrency nor deadlock one another.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gateway.endpoints import Breaker, Endpoint, EndpointState, Transition, endpoint_of
from gateway.outbox_model import Delivery, DeliveryStatus
from persistence import rows
from persistence import script as q
from persistence.script import Script

LEGACY_BATCH = 500


def fill_legacy_endpoints() -> Script[int]:
    """Name the endpoint of deliveries written before endpoints existed; how many were named."""
    total = 0
    while True:
        found = yield from q.rows("legacy_deliveries", {"limit": LEGACY_BATCH})
        named = [
            {"id": r["id"], "endpoint": endpoint_of(r["target_url"], r["channel"])} for r in found
        ]
        yield from q.many("set_delivery_endpoint", named)
        total += len(named)
        if len(found) < LEGACY_BATCH:
            return total


def claim(now: int, limit: int, lease_ms: int, per_endpoint: int) -> Script[list[Delivery]]:
    """Lease up to ``limit`` deliveries: first one probe of each endpoint whose cool-down is
    over, then due deliveries of closed endpoints, at most ``per_endpoint`` of each in flight
    (counting those other replicas hold). Deliveries of open endpoints are not touched."""
    lease_until = now + lease_ms
    claimed: list[Delivery] = []
    candidates = yield from q.rows("probe_candidates", {"now": now, "limit": limit})
    for candidate in candidates:
        endpoint = candidate["endpoint"]
        params = {"endpoint": endpoint, "now": now, "lease_until": lease_until}
        if (yield from q.row("start_probe", params)) is None:
            continue  # another replica probes it
        for found in (yield from q.rows("claim_probe_delivery", params)):
            claimed.append(dataclasses.replace(rows.delivery_from_row(found), probe=True))
    due = yield from q.rows("due_endpoints", {"now": now, "limit": limit})
    for entry in sorted(due, key=lambda r: str(r["endpoint"])):
        room = limit - len(claimed)
        if room <= 0:
            break
        endpoint = entry["endpoint"]
        if entry["known"] is None:
            yield from q.count("add_endpoint", {"endpoint": endpoint})
        locked = yield from q.row("lock_endpoint", {"endpoint": endpoint})
        if locked is None or locked["state"] != EndpointState.CLOSED:
            continue
        busy = yield from q.one("endpoint_busy", {"endpoint": endpoint, "now": now})
        free = min(per_endpoint - int(busy["n"]), room)
        if free <= 0:
            continue
        params = {"endpoint": endpoint, "now": now, "lease_until": lease_until, "limit": free}
        found = yield from q.rows("claim_endpoint_deliveries", params)
        claimed.extend(rows.delivery_from_row(r) for r in found)
    return claimed


def settle(endpoint: str, succeeded: bool, now: int, breaker: Breaker) -> Script[Transition | None]:
    """Count an attempt's outcome against its endpoint's breaker (``succeeded``: the endpoint
    answered as it should, with a 2xx or an abort); the transition the operator is told of."""
    found = yield from q.row("lock_endpoint", {"endpoint": endpoint})
    if found is None:
        yield from q.count("add_endpoint", {"endpoint": endpoint})
        found = yield from q.one("lock_endpoint", {"endpoint": endpoint})
    was = EndpointState(found["state"])
    key = {"endpoint": endpoint, "now": now, "was": was.value}
    if succeeded:
        yield from q.count("endpoint_succeeded", key)
        if was is EndpointState.CLOSED:
            return None
        paused = now - (found["opened_at"] or now)
        yield from q.count("resume_endpoint_windows", {"endpoint": endpoint, "paused": paused})
        yield q.OUTBOX
        return Transition.RECOVERED
    failures = int(found["consecutive_failures"]) + 1
    state, open_until, opened_at = was, found["open_until"], found["opened_at"]
    transition = None
    if was is EndpointState.HALF_OPEN:
        state, open_until = EndpointState.OPEN, now + breaker.cooldown_ms
    elif was is EndpointState.CLOSED and failures >= breaker.threshold:
        state, open_until, opened_at = EndpointState.OPEN, now + breaker.cooldown_ms, now
        transition = Transition.DISABLED
    params = {**key, "state": state.value, "open_until": open_until, "opened_at": opened_at}
    yield from q.count("endpoint_failed", params)
    return transition


def get_endpoint(endpoint: str) -> Script[Endpoint | None]:
    """One endpoint's state (without counts)."""
    found = yield from q.row("lock_endpoint", {"endpoint": endpoint})
    return None if found is None else endpoint_from_row(found)


def list_endpoints(project_id: str | None, limit: int) -> Script[list[Endpoint]]:
    """Every endpoint with its deliveries counted by status; with ``project_id``, only the
    endpoints of that project's deliveries, counting only those."""
    params = {"project_id": project_id, "limit": limit}
    return [endpoint_from_row(r) for r in (yield from q.rows("list_endpoints", params))]


def count_endpoints_by_state() -> Script[dict[str, int]]:
    """How many endpoints are in each breaker state."""
    found = yield from q.rows("count_endpoints_by_state")
    return {str(r["state"]): int(r["n"]) for r in found}


def recover(
    since: int,
    until: int,
    now: int,
    *,
    status: DeliveryStatus,
    endpoint: str | None,
    project_id: str | None,
    limit: int,
) -> Script[list[str]]:
    """Make the ``status`` (dead or aborted) deliveries created in ``[since, until)`` pending
    again, at most ``limit`` (oldest first), and end their open endpoints' cool-downs; the ids
    of those sent again."""
    params: dict[str, Any] = {
        "since": since,
        "until": until,
        "now": now,
        "status": status.value,
        "endpoint": endpoint,
        "project_id": project_id,
        "limit": limit,
    }
    found = yield from q.rows("recover_deliveries", params)
    for touched in sorted({str(r["endpoint"]) for r in found}):
        yield from hasten_probe(touched, now)
    if found:
        yield q.OUTBOX
    return [str(r["id"]) for r in found]


def hasten_probe(endpoint: str, now: int) -> Script[None]:
    """A delivery to ``endpoint`` was sent again by hand: if it is open, its cool-down ends now,
    so the next probe (one delivery) goes at once."""
    yield from q.count("hasten_probe", {"endpoint": endpoint, "now": now})


def endpoint_from_row(row: Any) -> Endpoint:
    """An ``endpoints`` row (with counts, if the query has them) as an ``Endpoint``."""
    keys = set(row.keys())
    counts = {k: int(row[k]) for k in ("pending", "delivered", "dead", "aborted") if k in keys}
    return Endpoint(
        endpoint=row["endpoint"],
        state=EndpointState(row["state"]),
        consecutive_failures=int(row["consecutive_failures"]),
        last_success_at=row["last_success_at"],
        last_failure_at=row["last_failure_at"],
        open_until=row["open_until"],
        opened_at=row["opened_at"],
        **counts,
    )
