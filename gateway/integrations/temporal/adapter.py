"""The relay's Temporal side: a callback from waitgate continues the run that parked the wait.

``execution.resumed`` completes the waiting ``waitgate_park`` activity with
``{executionId, resumedBy, payload, waitSeq, webhookId}`` (or, for ``wait_for_signal``, signals
the workflow ``waitgate_resumed`` with the same); ``execution.canceled`` fails the activity with
an ``ApplicationError`` of type ``WaitgateCanceled`` (or signals ``waitgate_canceled``).
A run that is already past the wait (the activity completed, the workflow closed) counts as
done: Temporal says "not found", the relay answers 200, and waitgate stops retrying.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from temporalio.client import Client
from temporalio.envconfig import ClientConfig
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from gateway.integrations.temporal.shapes import (
    CANCELED_ERROR,
    CANCELED_SIGNAL,
    KEY_ACTIVITY_ID,
    KEY_RUN_ID,
    KEY_WORKFLOW_ID,
    RESUMED_SIGNAL,
)

if TYPE_CHECKING:
    from gateway.integrations.relay import Callback

DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_NAMESPACE = "default"
log = logging.getLogger("waitgate.relay.temporal")


class TemporalAdapter:
    """Resumes and cancels Temporal runs through ``client`` (one namespace)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def resumed(self, callback: Callback) -> None:
        """Complete the waiting activity, or signal the waiting workflow, with the outcome."""
        outcome = {
            "executionId": callback.execution_id,
            "resumedBy": callback.resumed_by,
            "payload": callback.payload,
            "waitSeq": callback.wait_seq,
            "webhookId": callback.id,
        }
        target = _target(callback.custom_data)
        if target is None:
            log.warning("execution %s names no Temporal run: ignored", callback.execution_id)
            return
        workflow_id, run_id, activity_id = target
        if activity_id is not None:
            handle = self.client.get_async_activity_handle(
                workflow_id=workflow_id, run_id=run_id, activity_id=activity_id
            )
            await _once(handle.complete(outcome), callback)
        else:
            workflow = self.client.get_workflow_handle(workflow_id, run_id=run_id)
            await _once(workflow.signal(RESUMED_SIGNAL, outcome), callback)

    async def canceled(self, callback: Callback) -> None:
        """Fail the waiting activity (``WaitgateCanceled``, not retried), or signal the
        workflow ``waitgate_canceled``."""
        target = _target(callback.custom_data)
        if target is None:
            log.warning("execution %s names no Temporal run: ignored", callback.execution_id)
            return
        workflow_id, run_id, activity_id = target
        if activity_id is not None:
            handle = self.client.get_async_activity_handle(
                workflow_id=workflow_id, run_id=run_id, activity_id=activity_id
            )
            error = ApplicationError(
                f"waitgate execution {callback.execution_id} was canceled",
                {"executionId": callback.execution_id, "webhookId": callback.id},
                type=CANCELED_ERROR,
                non_retryable=True,
            )
            await _once(handle.fail(error), callback)
        else:
            workflow = self.client.get_workflow_handle(workflow_id, run_id=run_id)
            body = {"executionId": callback.execution_id, "webhookId": callback.id}
            await _once(workflow.signal(CANCELED_SIGNAL, body), callback)


def _target(custom: Mapping[str, str]) -> tuple[str, str | None, str | None] | None:
    """Workflow id, run id and activity id (``None``: signal the workflow) of a callback."""
    workflow_id = custom.get(KEY_WORKFLOW_ID)
    if not workflow_id:
        return None
    return workflow_id, custom.get(KEY_RUN_ID) or None, custom.get(KEY_ACTIVITY_ID) or None


async def _once(call: Any, callback: Callback) -> None:
    """Run the Temporal call; a run already past this wait counts as done."""
    try:
        await call
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        log.info(
            "execution %s: the Temporal run is past this wait already (%s); nothing to do",
            callback.execution_id,
            error.message,
        )


async def connect(environ: Mapping[str, str] | None = None) -> Client:
    """A client configured as Temporal's own tools are: ``TEMPORAL_ADDRESS`` (default
    ``localhost:7233``), ``TEMPORAL_NAMESPACE`` (default ``default``), ``TEMPORAL_API_KEY``,
    ``TEMPORAL_TLS*``, or a profile of ``TEMPORAL_CONFIG_FILE`` / ``TEMPORAL_PROFILE``."""
    config: dict[str, Any] = dict(
        ClientConfig.load_client_connect_config(
            override_env_vars=None if environ is None else dict(environ)
        )
    )
    config.setdefault("target_host", DEFAULT_ADDRESS)
    config.setdefault("namespace", DEFAULT_NAMESPACE)
    return await Client.connect(**config)


@contextlib.asynccontextmanager
async def relay_adapter() -> AsyncIterator[TemporalAdapter]:
    """The adapter of ``waitgate relay --engine temporal``, connected from the environment."""
    client = await connect()
    log.info("relaying to Temporal at %s", client.service_client.config.target_host)
    yield TemporalAdapter(client)
