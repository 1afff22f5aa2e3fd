"""Prometheus metrics: what the gateway counts (served at ``/metrics``).

Counters and histograms are per process (with ``--workers N`` each worker answers for itself;
scrape them through the per-worker ports or prefer one worker per container). Gauges of the
whole database (executions by status, the timer's backlog) are read at scrape time, at most
once a second (``gateway.gauges``).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PARKS = Counter("waitgate_parks_total", "Waits parked")
RESUMES = Counter("waitgate_resumes_total", "Waits resumed, by cause", ["by"])
RESUME_LATENCY = Histogram(
    "waitgate_resume_seconds",
    "Time to answer a resume URL call that resumed a wait",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 30),
)
TIMER_LATENESS = Histogram(
    "waitgate_timer_lateness_seconds",
    "How late a timer fired: actual resume minus waitTill",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 60, 600),
)
DELIVERIES = Counter(
    "waitgate_delivery_attempts_total",
    "Callback delivery attempts, by result (delivered, failed, dead, aborted)",
    ["result"],
)
BREAKER_TRANSITIONS = Counter(
    "waitgate_delivery_breaker_transitions_total",
    "Endpoint circuit breakers opened (endpoint.disabled) or closed (endpoint.recovered)",
    ["transition"],
)
ENDPOINTS = Gauge(
    "waitgate_delivery_endpoints",
    "Delivery endpoints by circuit breaker state (closed, open, half_open)",
    ["state"],
)
ENDPOINT_STATES = ("closed", "open", "half_open")
SIGNATURE_FAILURES = Counter(
    "waitgate_signature_failures_total", "Resume URL calls refused: bad signature"
)
RATE_LIMITED = Counter(
    "waitgate_rate_limited_total", "Requests refused with 429, by limit", ["limit"]
)
BACKGROUND_ERRORS = Counter(
    "waitgate_background_errors_total",
    "Failed iterations of a background loop (each followed by a backoff), by task",
    ["task"],
)
AUDIT_DROPPED = Counter(
    "waitgate_audit_dropped_total",
    "Audit rows dropped (oldest first) because the buffer was full while writes failed",
)
EVENTS = Counter(
    "waitgate_events_total",
    "Events recorded, by what they did (matched, unmatched, duplicate)",
    ["outcome"],
)
EVENT_REFUSALS = Counter(
    "waitgate_event_refusals_total",
    "Events refused by their source's verification (never stored), by source and status",
    ["source", "status"],
)
EXECUTIONS = Gauge("waitgate_executions", "Executions in the database, by status", ["status"])
OVERDUE = Gauge("waitgate_overdue_waits", "Waits past their deadline not yet resumed (backlog)")
STATUSES = ("new", "running", "waiting", "success", "error", "crashed", "canceled", "unknown")
