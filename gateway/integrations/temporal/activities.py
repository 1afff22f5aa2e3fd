"""The activities a Temporal worker registers to park waits in waitgate.

    activities = WaitgateActivities.from_env()      # WAITGATE_URL, WAITGATE_API_KEY, …
    Worker(client, task_queue="orders", workflows=[Order], activities=activities.all())

Each park creates a waitgate execution whose ``callbackUrl`` is the relay and whose customData
names the waiting run (``temporal_workflowId``, ``temporal_runId``, and for the async variant
``temporal_activityId``), then parks it with the workflow's wait and deadline.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from gateway.integrations.temporal.shapes import (
    ENGINE,
    FINISH_ACTIVITY,
    KEY_ACTIVITY_ID,
    KEY_ENGINE,
    KEY_RUN_ID,
    KEY_WORKFLOW_ID,
    PARK_ACTIVITY,
    PARK_FOR_SIGNAL_ACTIVITY,
    PARKED_SIGNAL,
    RESERVED_KEYS,
    STOP_ACTIVITY,
    Links,
    ParkRequest,
)

RETRYABLE_STATUSES = frozenset({408, 425, 429})
"""Client errors that may pass; any other 4xx means the request itself is wrong."""


class WaitgateActivities:
    """``waitgate_park``, ``waitgate_park_for_signal``, ``waitgate_finish`` and
    ``waitgate_stop``, bound to one
    gateway (``base_url``, an API key with ``execution:write``) and one relay (``relay_url``,
    the ``callbackUrl`` of every execution parked here)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        relay_url: str,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._base = base_url.rstrip("/") + "/api/v1"
        self._headers = {"X-N8N-API-KEY": api_key}
        self.relay_url = relay_url

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WaitgateActivities:
        """From ``WAITGATE_URL`` (default ``http://127.0.0.1:5678``), ``WAITGATE_API_KEY`` and
        ``WAITGATE_RELAY_URL`` (default ``http://127.0.0.1:5679/``, ``waitgate relay``'s)."""
        env = os.environ if environ is None else environ
        key = env.get("WAITGATE_API_KEY", "")
        if not key:
            raise RuntimeError("set WAITGATE_API_KEY to an API key of the gateway")
        return cls(
            env.get("WAITGATE_URL", "http://127.0.0.1:5678"),
            key,
            env.get("WAITGATE_RELAY_URL", "http://127.0.0.1:5679/"),
        )

    def all(self) -> list[Callable[..., Any]]:
        """The activities to pass to ``Worker(activities=…)``."""
        return [self.park, self.park_for_signal, self.finish, self.stop]

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    @activity.defn(name=PARK_ACTIVITY)
    async def park(self, request: ParkRequest) -> dict[str, Any]:
        """Park the wait, tell the workflow its links (signal ``waitgate_parked``), and
        complete later: the relay completes this activity when the wait ends."""
        workflow_id, run_id = _workflow_run()
        links = await self._park(request, {KEY_ACTIVITY_ID: activity.info().activity_id})
        handle = activity.client().get_workflow_handle(workflow_id, run_id=run_id)
        try:
            await handle.signal(PARKED_SIGNAL, links.to_wire())
        except BaseException:
            await self._abandon(links.execution_id)
            raise
        activity.raise_complete_async()
        raise AssertionError("unreachable: raise_complete_async() raises")

    @activity.defn(name=PARK_FOR_SIGNAL_ACTIVITY)
    async def park_for_signal(self, request: ParkRequest) -> dict[str, Any]:
        """Park the wait and return its links; the relay signals the workflow when it ends."""
        return (await self._park(request, {})).to_wire()

    @activity.defn(name=FINISH_ACTIVITY)
    async def finish(self, execution_id: int, data: dict[str, Any]) -> None:
        """Finish the execution (``success``) once its run has taken the wait's outcome; one
        that ended otherwise (stopped meanwhile) is left alone."""
        response = await self._http.post(
            f"{self._base}/executions/{execution_id}/finish",
            json={"status": "success", "data": data},
            headers=self._headers,
        )
        if response.status_code not in (200, 404, 409):
            _raise(response, f"finishing execution {execution_id}")

    @activity.defn(name=STOP_ACTIVITY)
    async def stop(self, execution_id: int) -> None:
        """Stop the execution (its run was cancelled); one that already ended is left alone."""
        response = await self._http.post(
            f"{self._base}/executions/{execution_id}/stop", headers=self._headers
        )
        if response.status_code not in (200, 404, 409):
            _raise(response, f"stopping execution {execution_id}")

    async def _park(self, request: ParkRequest, extra: dict[str, str]) -> Links:
        workflow_id, run_id = _workflow_run()
        taken = sorted(set(request.custom_data) & set(RESERVED_KEYS))
        if taken:
            raise ApplicationError(
                f"customData keys {taken} are the adapter's own", non_retryable=True
            )
        custom = {
            **request.custom_data,
            KEY_ENGINE: ENGINE,
            KEY_WORKFLOW_ID: workflow_id,
            KEY_RUN_ID: run_id,
            **extra,
        }
        parked = await self._post(
            "/executions",
            {
                "workflowId": request.name,
                "customData": custom,
                "callbackUrl": self.relay_url,
                "data": request.data,
                "wait": {**request.wait, "waitTill": request.wait_till},
            },
            "creating the execution parked at its wait",
        )
        execution_id = int(parked["id"])
        activity.logger.info("waitgate execution %s parked", execution_id)
        return Links(
            key=request.key,
            execution_id=execution_id,
            resume_url=parked.get("resumeUrl"),
            approval_url=parked.get("approvalUrl"),
            form_url=parked.get("resumeFormUrl"),
        )

    async def _abandon(self, execution_id: int) -> None:
        """Stop an execution this attempt made but cannot hand over (a retry makes another)."""
        with contextlib.suppress(httpx.HTTPError):
            await self._http.post(
                f"{self._base}/executions/{execution_id}/stop", headers=self._headers
            )

    async def _post(self, path: str, body: dict[str, Any], doing: str) -> dict[str, Any]:
        response = await self._http.post(self._base + path, json=body, headers=self._headers)
        if response.status_code >= 300:
            _raise(response, doing)
        answer: dict[str, Any] = response.json()
        return answer


def _workflow_run() -> tuple[str, str]:
    """The workflow id and run id of the running activity (which a workflow must have run)."""
    info = activity.info()
    if not info.workflow_id or not info.workflow_run_id:
        raise ApplicationError("waitgate's park activities run from workflows", non_retryable=True)
    return info.workflow_id, info.workflow_run_id


def _raise(response: httpx.Response, doing: str) -> NoReturn:
    """An activity failure: a request waitgate refused as wrong is not retried."""
    try:
        message = str(response.json().get("message", response.text))
    except ValueError:
        message = response.text
    status = response.status_code
    retryable = status >= 500 or status in RETRYABLE_STATUSES
    raise ApplicationError(
        f"waitgate answered {status} {doing}: {message}",
        type=f"WaitgateHttp{status}",
        non_retryable=not retryable,
    )
