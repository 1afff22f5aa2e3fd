"""The few waitgate calls the Airflow operator, trigger and notifier make, without Airflow.

A task parks in waitgate in three calls (create the execution with the task's coordinates in
``customData``, park it, read back the wait's ``seq`` and link); its trigger then reads the
execution until that wait has ended. Blocking calls (``httpx.Client``) serve the operator's
``execute`` and the notifier, which Airflow runs synchronously; the trigger's read is async.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import msgspec

from gateway.client import WaitgateError

ENGINE = "airflow"
TIMEOUT_SECONDS = 10.0
LINK_FIELDS = ("approvalUrl", "resumeFormUrl", "resumeUrl")
"""Where a person or a partner acts on the wait, most specific first."""
ENDED = frozenset({"success", "error", "crashed", "canceled"})
"""Statuses in which the execution will not resume any more."""


@dataclass(frozen=True)
class Gateway:
    """A waitgate base URL and the API key the task acts with."""

    url: str
    api_key: str

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(f"the waitgate URL must be http(s)://host[:port], got {self.url!r}")
        if not self.api_key:
            raise ValueError("the waitgate connection needs an API key (its password)")

    @property
    def api(self) -> str:
        """The base of the API routes."""
        return self.url.rstrip("/") + "/api/v1"

    @property
    def headers(self) -> dict[str, str]:
        """The credential header."""
        return {"X-N8N-API-KEY": self.api_key}


@dataclass(frozen=True)
class TaskCoordinates:
    """Which Airflow task instance waits: what the relay and people need to find it."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int

    def custom_data(self, kind: str) -> dict[str, str]:
        """The execution's ``customData`` (keys ``airflow_*``; values cut to waitgate's 255)."""
        return {
            "waitgate_engine": ENGINE,
            "airflow_kind": kind,
            "airflow_dagId": self.dag_id[:255],
            "airflow_runId": self.run_id[:255],
            "airflow_taskId": self.task_id[:255],
            "airflow_mapIndex": str(self.map_index),
        }


@dataclass(frozen=True)
class ParkedWait:
    """A parked wait: the execution, the wait's ``seq`` and the link to hand out."""

    execution_id: int
    seq: int
    link: str | None
    wait_till: str | None


WaitStatus = Literal["resumed", "canceled"]


@dataclass(frozen=True)
class WaitOutcome:
    """How a wait ended: resumed (by whom, with what) or the execution canceled before."""

    status: WaitStatus
    resumed_by: str | None = None
    payload: Any = None

    def as_event(self, execution_id: int, seq: int) -> dict[str, Any]:
        """As a trigger event's payload (JSON only)."""
        return {
            "status": self.status,
            "executionId": execution_id,
            "seq": seq,
            "resumedBy": self.resumed_by,
            "payload": self.payload,
        }


def deadline(timeout: timedelta | None, now: datetime) -> str | None:
    """``waitTill`` for a wait that may last ``timeout`` from ``now`` (aware)."""
    return None if timeout is None else (now + timeout).isoformat()


def _answer(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            message = str(response.json().get("message", response.text))
        except ValueError:
            message = response.text
        raise WaitgateError(response.status_code, message)
    return response.json()


def park(
    gateway: Gateway,
    *,
    workflow_id: str,
    custom_data: Mapping[str, str],
    wait: Mapping[str, Any],
    callback_url: str | None = None,
    timeout: float = TIMEOUT_SECONDS,
) -> ParkedWait:
    """Create an execution parked on ``wait`` (a ``POST …/wait`` body), in one request: a
    refused wait leaves no execution behind."""
    created: dict[str, Any] = {
        "workflowId": workflow_id,
        "customData": dict(custom_data),
        "wait": dict(wait),
    }
    if callback_url is not None:
        created["callbackUrl"] = callback_url
    with httpx.Client(base_url=gateway.api, headers=gateway.headers, timeout=timeout) as http:
        return _parked_wait(_answer(http.post("/executions", content=msgspec.json.encode(created))))


def find_parked(
    gateway: Gateway, custom_data: Mapping[str, str], timeout: float = TIMEOUT_SECONDS
) -> ParkedWait | None:
    """The wait an earlier try of the same task instance parked (``custom_data`` names it),
    if its worker died before it deferred: the execution still waiting, or running with that
    wait resumed (its outcome not taken yet); ``None`` if there is none."""
    matching = {f"customData[{key}]": value for key, value in custom_data.items()}
    with httpx.Client(base_url=gateway.api, headers=gateway.headers, timeout=timeout) as http:
        for status in ("waiting", "running"):
            listed = _answer(http.get("/executions", params={**matching, "status": status}))
            for found in listed["data"]:
                eid = found["id"]
                seen = _answer(http.get(f"/executions/{eid}", params={"includeData": "true"}))
                waits = (seen.get("data") or {}).get("waits") or []
                if status == "waiting" and waits:
                    return _parked_wait(seen)
                if waits and waits[-1].get("resumedAt"):  # answered: no link to hand out
                    return ParkedWait(int(eid), int(waits[-1]["seq"]), None, None)
    return None


def _parked_wait(execution: Mapping[str, Any]) -> ParkedWait:
    """The waiting execution's last wait and the link to hand out (with ``data.waits``)."""
    waits = (execution.get("data") or {}).get("waits") or [{"seq": 1}]
    link = next((execution[f] for f in LINK_FIELDS if execution.get(f)), None)
    return ParkedWait(int(execution["id"]), int(waits[-1]["seq"]), link, execution.get("waitTill"))


def finish(
    gateway: Gateway, execution_id: int, data: Any, timeout: float = TIMEOUT_SECONDS
) -> None:
    """Mark the execution done in waitgate (``success``, with what the task returns)."""
    body = msgspec.json.encode({"status": "success", "data": data})
    with httpx.Client(base_url=gateway.api, headers=gateway.headers, timeout=timeout) as http:
        _answer(http.post(f"/executions/{execution_id}/finish", content=body))


def outcome_of(execution: Mapping[str, Any], seq: int) -> WaitOutcome | None:
    """How wait ``seq`` of this execution (``includeData=true``) ended; ``None``: not yet."""
    data = execution.get("data")
    if data is None:
        if execution.get("dataTooLargeToDisplay"):
            raise WaitgateError(413, "the execution's data is too large to display")
        raise WaitgateError(500, "the execution came without its data")
    wait = next((w for w in data.get("waits", []) if w.get("seq") == seq), None)
    if wait is not None and wait.get("resumedAt") is not None:
        return WaitOutcome("resumed", wait.get("resumedBy"), wait.get("payload"))
    if execution.get("status") in ENDED:
        return WaitOutcome("canceled")
    return None


async def read_outcome(
    http: httpx.AsyncClient, gateway: Gateway, execution_id: int, seq: int
) -> WaitOutcome | None:
    """Ask waitgate once how wait ``seq`` ended (``None``: still waiting)."""
    response = await http.get(
        f"{gateway.api}/executions/{execution_id}",
        params={"includeData": "true"},
        headers=gateway.headers,
    )
    found: dict[str, Any] = _answer(response)
    return outcome_of(found, seq)
