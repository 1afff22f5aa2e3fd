"""Workflows the Temporal engine tests run: one wait through the helpers, then its outcome."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from gateway.integrations.temporal import CANCELED_ERROR, links, wait_for, wait_for_signal

WAITS: dict[str, dict[str, Any]] = {
    "webhook": {"webhook": {"httpMethod": "POST"}},
    "approval": {"approval": {"title": "Ship order A-1001?"}},
    "form": {
        "form": {
            "title": "Delivery address",
            "fields": [{"label": "Street", "name": "street", "required": True}],
        }
    },
    "event": {"events": [{"source": "orders", "match": {"orderId": {"customData": "orderId"}}}]},
    "refused": {"webhook": {"httpMethod": "BREW"}},
}


@dataclass
class Ask:
    """What the test workflow waits for and how."""

    via: str = "activity"
    """``activity`` (``wait_for``) or ``signal`` (``wait_for_signal``)."""
    kind: str = "webhook"
    """A key of ``WAITS``."""
    timeout_seconds: float = 3600.0
    grace_seconds: float = 600.0
    default: Any = None
    linger: bool = False
    """After the wait, stay open until the ``finish`` signal."""
    announce: bool = False
    """Run the wait as a task and read its links meanwhile (``links("gate")``)."""


@workflow.defn
class Gate:
    """Waits once, then returns how the wait ended (or that it was canceled)."""

    def __init__(self) -> None:
        self.finished = False

    @workflow.signal
    def finish(self) -> None:
        """Let a lingering run end."""
        self.finished = True

    @workflow.run
    async def run(self, ask: Ask) -> dict[str, Any]:
        """The wait's outcome as a plain object."""
        helper = wait_for if ask.via == "activity" else wait_for_signal
        waiting = asyncio.create_task(
            helper(
                timeout=timedelta(seconds=ask.timeout_seconds),
                grace=timedelta(seconds=ask.grace_seconds),
                default=ask.default,
                key="gate",
                custom_data={"orderId": "A-1001"},
                **WAITS[ask.kind],
            )
        )
        announced = (await links("gate")).resume_url if ask.announce else None
        try:
            resumed = await waiting
        except ApplicationError as error:
            if error.type != CANCELED_ERROR:
                raise
            return {"canceled": True, "message": error.message}
        if ask.linger:
            await workflow.wait_condition(lambda: self.finished)
        outcome = {
            "executionId": resumed.execution_id,
            "resumedBy": resumed.resumed_by,
            "payload": resumed.payload,
            "timedOut": resumed.timed_out,
        }
        return outcome if announced is None else {**outcome, "announced": announced}
