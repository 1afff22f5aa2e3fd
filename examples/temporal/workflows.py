"""The example's workflow: ship an order once a person approves it on waitgate's page.

Nobody answers within the timeout? waitgate's deadline resumes the wait and the workflow takes
its default: not approved (the order is held, the workflow does not fail).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from gateway.integrations.temporal import wait_for


@dataclass
class Order:
    """What the workflow is started with."""

    id: str
    timeout_seconds: float = 300.0


@workflow.defn
class ShipOrder:
    """Asks for an approval, then ships or holds the order."""

    @workflow.run
    async def run(self, order: Order) -> dict[str, Any]:
        """The decision, and whether the deadline made it."""
        decision = await wait_for(
            approval={
                "title": f"Ship order {order.id}?",
                "description": "Approve to ship it now; without an answer it is held.",
            },
            timeout=timedelta(seconds=order.timeout_seconds),
            default={"approved": False},
            key="approval",
            custom_data={"orderId": order.id},
        )
        approved = bool((decision.payload or {}).get("approved"))
        return {
            "order": order.id,
            "shipped": approved,
            "resumedBy": decision.resumed_by,
            "timedOut": decision.timed_out,
        }
