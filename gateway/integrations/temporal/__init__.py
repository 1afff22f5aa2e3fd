"""waitgate for Temporal (``pip install 'waitgate[temporal]'``).

- Worker: register ``WaitgateActivities(...).all()`` (or ``.from_env()``).
- Workflow: ``await wait_for(approval={...}, timeout=..., default=...)`` (the activity
  completes when the wait ends) or ``await wait_for_signal(...)`` (the workflow is signalled).
- Relay: ``waitgate relay --engine temporal`` builds ``relay_adapter()`` from ``TEMPORAL_*``.

Inside workflow code import through the sandbox as Temporal advises for third-party modules:

    with workflow.unsafe.imports_passed_through():
        from gateway.integrations.temporal import wait_for
"""

from gateway.integrations.temporal.activities import WaitgateActivities
from gateway.integrations.temporal.adapter import TemporalAdapter, connect, relay_adapter
from gateway.integrations.temporal.shapes import (
    CANCELED_ERROR,
    LINKS_QUERY,
    Links,
    ParkRequest,
    Resumed,
)
from gateway.integrations.temporal.workflow import links, wait_for, wait_for_signal

__all__ = [
    "CANCELED_ERROR",
    "LINKS_QUERY",
    "Links",
    "ParkRequest",
    "Resumed",
    "TemporalAdapter",
    "WaitgateActivities",
    "connect",
    "links",
    "relay_adapter",
    "wait_for",
    "wait_for_signal",
]
