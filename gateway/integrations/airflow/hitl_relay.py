"""The relay's Airflow adapter: a HITL request answered in waitgate answers it in Airflow.

On ``execution.resumed`` of an execution the notifier made (``customData.airflow_kind`` is
``hitl``), the adapter reads the task's ``hitlDetails`` from Airflow's REST API (``/api/v2``),
maps the decision onto the request's options (``hitl_options``), or takes the request's
``defaults`` when waitgate's deadline resumed the wait, and ``PATCH``es the response. Airflow
then schedules the task again, which returns the chosen options.

Idempotent: a request already answered (in Airflow's UI, by Airflow's own timeout, or by an
earlier delivery of the same callback) is left alone, and Airflow's 409 for a response written
meanwhile counts as done. Any other failure raises, so the relay answers 503 and waitgate
retries. This module needs no Airflow install: the relay speaks HTTP to Airflow's API server.

Environment of ``waitgate relay --engine airflow``: ``AIRFLOW_API_URL`` (the API server,
``http://airflow:8080``) and either ``AIRFLOW_API_TOKEN`` (a JWT) or ``AIRFLOW_API_USERNAME``
with ``AIRFLOW_API_PASSWORD`` (a token is fetched from ``/auth/token`` and renewed on a 401).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import httpx

from gateway.integrations.airflow.hitl_options import chosen_options
from gateway.integrations.relay import Adapter, Callback

log = logging.getLogger("waitgate.relay.airflow")
TIMEOUT_SECONDS = 30.0


class AirflowApiError(Exception):
    """Airflow's API answered what the adapter cannot go on with (the relay answers 503)."""


class AirflowApi:
    """Airflow's REST API (``/api/v2``) with a bearer token, renewed once on a 401 when
    the adapter holds a username and password."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        url: str,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        if token is None and not (username and password):
            raise ValueError("Airflow's API needs a token, or a username and a password")
        self._http = http
        self._url = url.rstrip("/")
        self._token = token
        self._credentials = None if token else (username or "", password or "")

    async def _login(self) -> str:
        if self._credentials is None:
            raise AirflowApiError("Airflow refused the API token (401)")
        username, password = self._credentials
        response = await self._http.post(
            f"{self._url}/auth/token", json={"username": username, "password": password}
        )
        if response.status_code >= 400:
            raise AirflowApiError(f"Airflow refused the login of {username!r}: {response.text}")
        token: str = response.json()["access_token"]
        return token

    async def request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """One call of ``/api/v2`` + ``path``; logs in first, and again after a 401."""
        for attempt in range(2):
            if self._token is None:
                self._token = await self._login()
            response = await self._http.request(
                method,
                f"{self._url}/api/v2{path}",
                json=body,
                headers={"Authorization": f"Bearer {self._token}"},
            )
            if response.status_code != 401 or attempt or self._credentials is None:
                return response
            self._token = None
        return response  # pragma: no cover - the loop returns


def hitl_path(custom_data: Mapping[str, str]) -> str:
    """The task instance's ``hitlDetails`` path, from the execution's ``customData``."""
    try:
        parts = [custom_data[k] for k in ("airflow_dagId", "airflow_runId", "airflow_taskId")]
        map_index = int(custom_data.get("airflow_mapIndex", "-1"))
    except (KeyError, ValueError) as exc:
        raise AirflowApiError(f"the execution's customData does not name a task: {exc}") from None
    dag, run, task = (quote(p, safe="") for p in parts)
    return f"/dags/{dag}/dagRuns/{run}/taskInstances/{task}/{map_index}/hitlDetails"


def _params_input(detail: Mapping[str, Any]) -> dict[str, Any]:
    """The request's form values as they stand (waitgate's approval does not change them)."""
    params = detail.get("params") or {}
    return {k: v.get("value") if isinstance(v, dict) else v for k, v in params.items()}


class AirflowHitlAdapter:
    """Answers Airflow HITL requests with waitgate's decisions (see the module)."""

    def __init__(self, api: AirflowApi) -> None:
        self.api = api

    async def resumed(self, callback: Callback) -> None:
        """Write the decision (or the defaults, after the deadline) as the HITL response."""
        if callback.custom_data.get("airflow_kind") != "hitl":
            log.info("execution %s is not a HITL request; nothing to relay", callback.execution_id)
            return
        path = hitl_path(callback.custom_data)
        found = await self.api.request("GET", path)
        if found.status_code != 200:
            raise AirflowApiError(f"reading {path} answered {found.status_code}: {found.text}")
        detail: dict[str, Any] = found.json()
        if detail.get("response_received"):
            log.info("HITL request of execution %s was answered already", callback.execution_id)
            return
        chosen = self._choice(callback, detail)
        if chosen is None:
            return
        body = {"chosen_options": chosen, "params_input": _params_input(detail)}
        answered = await self.api.request("PATCH", path, body)
        if answered.status_code == 409:
            log.info("HITL request of execution %s was answered meanwhile", callback.execution_id)
            return
        if answered.status_code != 200:
            raise AirflowApiError(f"answering {path} got {answered.status_code}: {answered.text}")
        log.info("execution %s answered %s with %s", callback.execution_id, path, chosen)

    @staticmethod
    def _choice(callback: Callback, detail: Mapping[str, Any]) -> list[str] | None:
        """The options to answer with; ``None`` (logged): nothing to answer with."""
        if callback.timed_out:
            defaults: list[str] | None = detail.get("defaults")
            if not defaults:
                log.warning(
                    "execution %s: the deadline passed and the HITL request has no defaults; "
                    "Airflow's own response_timeout decides",
                    callback.execution_id,
                )
            return defaults or None
        payload = callback.payload if isinstance(callback.payload, dict) else {}
        chosen = chosen_options(detail.get("options") or [], payload)
        if chosen is None:
            log.warning(
                "execution %s: the decision %r matches none of the options %s",
                callback.execution_id,
                payload.get("approved"),
                detail.get("options"),
            )
        return chosen

    async def canceled(self, callback: Callback) -> None:
        """A stopped waitgate execution leaves the Airflow task to its own timeout."""
        log.info(
            "execution %s was stopped in waitgate; the Airflow task keeps waiting",
            callback.execution_id,
        )


@asynccontextmanager
async def relay_adapter() -> AsyncIterator[Adapter]:
    """The adapter from the environment (see the module); closes its HTTP client after."""
    url = os.environ.get("AIRFLOW_API_URL")
    if not url:
        raise ValueError("set AIRFLOW_API_URL to Airflow's API server (http://host:8080)")
    async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as http:
        api = AirflowApi(
            http,
            url,
            token=os.environ.get("AIRFLOW_API_TOKEN") or None,
            username=os.environ.get("AIRFLOW_API_USERNAME"),
            password=os.environ.get("AIRFLOW_API_PASSWORD"),
        )
        yield AirflowHitlAdapter(api)
