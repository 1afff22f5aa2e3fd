"""``WaitgateTrigger``: wakes a deferred task when its waitgate wait has ended.

It runs in Airflow's triggerer (or inline in ``dag.test()``) and reads the execution from
waitgate's API until the wait has resumed: every ``poll_interval`` seconds at first, backing off
by half each time up to ``max_poll_interval``, after a failed read too (a 429 or an outage is
not hammered). The deadline is waitgate's own timer (it resumes the wait with ``resumedBy:
"timeout"``), so the trigger keeps no timer of its own and survives a triggerer restart: it is
rebuilt from ``serialize()`` and reads the same wait again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
from airflow.sdk import BaseHook
from airflow.triggers.base import BaseTrigger, TriggerEvent

from gateway.client import WaitgateError
from gateway.integrations.airflow.connection import gateway_of
from gateway.integrations.airflow.waitgate_api import Gateway, WaitOutcome, read_outcome

BACKOFF = 1.5
PERMANENT = frozenset({401, 403, 404, 413})
"""Answers that no later read changes: the task fails with waitgate's message."""


class WaitgateTrigger(BaseTrigger):
    """Fires once, with ``{status, executionId, seq, resumedBy, payload}``, when wait ``seq``
    of execution ``execution_id`` has resumed (or the execution ended without resuming it)."""

    def __init__(
        self,
        *,
        execution_id: int,
        seq: int,
        waitgate_conn_id: str = "waitgate_default",
        poll_interval: float = 5.0,
        max_poll_interval: float = 60.0,
    ) -> None:
        super().__init__()
        self.execution_id = execution_id
        self.seq = seq
        self.waitgate_conn_id = waitgate_conn_id
        self.poll_interval = poll_interval
        self.max_poll_interval = max(max_poll_interval, poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and the keyword arguments that rebuild this trigger."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "execution_id": self.execution_id,
                "seq": self.seq,
                "waitgate_conn_id": self.waitgate_conn_id,
                "poll_interval": self.poll_interval,
                "max_poll_interval": self.max_poll_interval,
            },
        )

    async def _gateway(self) -> Gateway:
        return gateway_of(await BaseHook.aget_connection(self.waitgate_conn_id))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Read the execution until its wait has ended; yield that once."""
        gateway = await self._gateway()
        interval = self.poll_interval
        async with httpx.AsyncClient(timeout=max(10.0, self.max_poll_interval)) as http:
            while True:
                try:
                    outcome = await read_outcome(http, gateway, self.execution_id, self.seq)
                except WaitgateError as exc:
                    if exc.status in PERMANENT:
                        yield TriggerEvent(self._failed(f"waitgate answered {exc}"))
                        return
                    self.log.warning("waitgate answered %s; reading again", exc)
                    outcome = None
                except httpx.TransportError as exc:
                    self.log.warning("cannot reach waitgate (%r); reading again", exc)
                    outcome = None
                if outcome is not None:
                    yield TriggerEvent(outcome.as_event(self.execution_id, self.seq))
                    return
                await asyncio.sleep(interval)
                interval = min(interval * BACKOFF, self.max_poll_interval)

    def _failed(self, message: str) -> dict[str, Any]:
        event = WaitOutcome("canceled").as_event(self.execution_id, self.seq)
        return {**event, "error": message}
