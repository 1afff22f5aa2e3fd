"""The Python SDK for engines: an async client for waitgate's engine and executions API.

    async with WaitgateClient("http://127.0.0.1:5678", api_key) as gate:
        execution = await gate.create("order-approval", callback_url="https://engine/cb")
        print(execution.resume_url)            # n8n's $execution.resumeUrl
        await execution.custom_data.set("orderId", "A-1001")
        await gate.wait(execution.id, wait_till="2030-01-01T00:00:00Z", webhook={})

``verify_callback`` checks the Standard Webhooks signature of a callback waitgate sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx
import msgspec

from gateway.domain import check_custom_data, check_custom_data_count
from gateway.errors import InvalidInput

CALLBACK_TOLERANCE_SECONDS = 300


class WaitgateError(Exception):
    """The gateway answered with an error; ``status`` and ``message`` say which, ``hint`` what
    to do about it when the gateway said."""

    def __init__(self, status: int, message: str, hint: str | None = None) -> None:
        super().__init__(f"{status}: {message}" + (f" ({hint})" if hint else ""))
        self.status = status
        self.message = message
        self.hint = hint


class CallbackVerificationError(Exception):
    """A callback's signature, id or timestamp does not check out."""


class CustomData:
    """n8n's ``$execution.customData``: ``set``, ``setAll``, ``get``, ``getAll``.

    The documented limits are checked locally first, with the gateway's own messages.
    """

    def __init__(self, execution: Execution) -> None:
        self._execution = execution

    async def set(self, key: str, value: str) -> None:
        """Add or replace one key."""
        check_custom_data({key: value})
        merged = {**self._execution.raw.get("customData", {}), key: value}
        check_custom_data_count(merged)
        self._execution.raw["customData"] = await self._execution.client.patch_custom_data(
            self._execution.id, {key: value}
        )

    async def set_all(self, values: Mapping[str, str]) -> None:
        """Replace every key."""
        checked = check_custom_data(dict(values))
        self._execution.raw["customData"] = await self._execution.client.put_custom_data(
            self._execution.id, checked
        )

    def get(self, key: str) -> str | None:
        """One value, as last seen."""
        value: str | None = self._execution.raw.get("customData", {}).get(key)
        return value

    def get_all(self) -> dict[str, str]:
        """Every key, as last seen."""
        return dict(self._execution.raw.get("customData", {}))

    setAll = set_all
    getAll = get_all


class Execution:
    """An execution as the gateway last described it; mirrors n8n's ``$execution``."""

    def __init__(self, client: WaitgateClient, raw: dict[str, Any]) -> None:
        self.client = client
        self.raw = raw
        self.custom_data = CustomData(self)
        self.customData = self.custom_data

    @property
    def id(self) -> int:
        """The execution id."""
        value: int = self.raw["id"]
        return value

    @property
    def status(self) -> str:
        """``running``, ``waiting``, ``success``, …"""
        value: str = self.raw["status"]
        return value

    @property
    def resume_url(self) -> str | None:
        """The URL that resumes the current (or next) wait."""
        value: str | None = self.raw.get("resumeUrl")
        return value

    resumeUrl = resume_url

    @property
    def approval_url(self) -> str | None:
        """The page of the current approval wait, where a person approves or rejects."""
        value: str | None = self.raw.get("approvalUrl")
        return value

    approvalUrl = approval_url

    def __repr__(self) -> str:
        return f"Execution(id={self.id}, status={self.status!r})"


def _error(response: httpx.Response) -> WaitgateError:
    """The error an answer of the gateway describes (``{message, code, hint?}``)."""
    try:
        answer = response.json()
    except ValueError:
        return WaitgateError(response.status_code, response.text)
    if not isinstance(answer, dict):
        return WaitgateError(response.status_code, response.text)
    hint = answer.get("hint")
    return WaitgateError(
        response.status_code,
        str(answer.get("message", response.text)),
        hint if isinstance(hint, str) else None,
    )


def _instant(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise InvalidInput("wait_till must be timezone-aware")
    return value.isoformat()


class WaitgateClient:
    """Async client for one gateway; pass ``http`` to reuse (or fake the transport of) a client."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._owns_http = http is None
        self._base = base_url.rstrip("/") + "/api/v1"
        self._headers = {"X-N8N-API-KEY": api_key}

    async def __aenter__(self) -> WaitgateClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this object made it."""
        if self._owns_http:
            await self._http.aclose()

    async def _call(
        self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None
    ) -> Any:
        content = None if body is None else msgspec.json.encode(body)
        headers = dict(self._headers)
        if content is not None:
            headers["content-type"] = "application/json"
        response = await self._http.request(
            method, self._base + path, content=content, headers=headers, params=params
        )
        if response.status_code >= 400:
            raise _error(response)
        return response.json()

    async def create(
        self,
        workflow_id: str,
        *,
        mode: str | None = None,
        custom_data: Mapping[str, str] | None = None,
        data: Any = None,
        callback_url: str | None = None,
        wait: Mapping[str, Any] | None = None,
    ) -> Execution:
        """A new running execution; with ``wait`` (the body of ``POST /executions/{id}/wait``:
        ``waitTill`` (a ``datetime`` or RFC 3339 text), ``webhook``, ``approval``, ``form``,
        ``events``), parked at that wait in the same call, and nothing made if it is refused."""
        body: dict[str, Any] = {"workflowId": workflow_id}
        if mode is not None:
            body["mode"] = mode
        if custom_data:
            body["customData"] = check_custom_data(dict(custom_data))
        if data is not None:
            body["data"] = data
        if callback_url is not None:
            body["callbackUrl"] = callback_url
        if wait is not None:
            body["wait"] = {k: v for k, v in wait.items() if v is not None}
            if "waitTill" in body["wait"]:
                body["wait"]["waitTill"] = _instant(body["wait"]["waitTill"])
        return Execution(self, await self._call("POST", "/executions", body))

    async def wait(
        self,
        execution_id: int,
        *,
        wait_till: datetime | str | None = None,
        webhook: Mapping[str, Any] | None = None,
        approval: Mapping[str, Any] | None = None,
        form: Mapping[str, Any] | None = None,
        events: Sequence[Mapping[str, Any]] | None = None,
    ) -> Execution:
        """Park the execution until ``wait_till``, a call of its resume URL, an answer on its
        approval page (``approval``: ``{title, description?, approvers?, …}``) or form
        (``form``: ``{title, schema, …}``), a partner's event matching one of ``events``, or
        the first of them (the fields of ``POST /executions/{id}/wait``)."""
        body: dict[str, Any] = {}
        if wait_till is not None:
            body["waitTill"] = _instant(wait_till)
        if webhook is not None:
            body["webhook"] = dict(webhook)
        if approval is not None:
            body["approval"] = dict(approval)
        if form is not None:
            body["form"] = dict(form)
        if events is not None:
            body["events"] = [dict(e) for e in events]
        return Execution(self, await self._call("POST", f"/executions/{execution_id}/wait", body))

    async def finish(
        self, execution_id: int, status: str = "success", *, data: Any = None, error: Any = None
    ) -> Execution:
        """Finish a running execution with ``success`` or ``error``."""
        body = {"status": status, "data": data, "error": error}
        return Execution(self, await self._call("POST", f"/executions/{execution_id}/finish", body))

    async def respond(
        self,
        execution_id: int,
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> dict[str, Any]:
        """Answer the caller held by a ``responseNode`` wait."""
        payload = {"statusCode": status_code, "headers": dict(headers or {}), "body": body}
        answer: dict[str, Any] = await self._call(
            "POST", f"/executions/{execution_id}/respond", payload
        )
        return answer

    async def resume(self, execution_id: int, data: Any = None) -> Execution:
        """End the current wait now (``resumedBy: "api"``)."""
        body = {"data": data}
        return Execution(self, await self._call("POST", f"/executions/{execution_id}/resume", body))

    async def stop(self, execution_id: int) -> Execution:
        """Cancel a new, running or waiting execution."""
        return Execution(self, await self._call("POST", f"/executions/{execution_id}/stop"))

    async def retry(self, execution_id: int) -> Execution:
        """A new execution retrying a failed, crashed or canceled one (``retryOf`` is set)."""
        return Execution(self, await self._call("POST", f"/executions/{execution_id}/retry"))

    async def deliveries(self, execution_id: int) -> list[dict[str, Any]]:
        """The execution's callback deliveries, each with its attempts."""
        answer = await self._call("GET", f"/executions/{execution_id}/deliveries")
        found: list[dict[str, Any]] = answer["data"]
        return found

    async def get(self, execution_id: int, *, include_data: bool = False) -> Execution:
        """One execution."""
        params = {"includeData": "true"} if include_data else None
        return Execution(self, await self._call("GET", f"/executions/{execution_id}", None, params))

    async def list(self, **filters: str) -> tuple[list[Execution], str | None]:
        """One page of executions (n8n's filters and ``cursor``) and the next cursor."""
        page = await self._call("GET", "/executions", None, filters)
        return [Execution(self, raw) for raw in page["data"]], page["nextCursor"]

    async def patch_custom_data(self, execution_id: int, values: dict[str, str]) -> dict[str, str]:
        """Add or replace keys; the whole customData after."""
        merged: dict[str, str] = await self._call(
            "PATCH", f"/executions/{execution_id}/custom-data", values
        )
        return merged

    async def put_custom_data(self, execution_id: int, values: dict[str, str]) -> dict[str, str]:
        """Replace customData."""
        replaced: dict[str, str] = await self._call(
            "PUT", f"/executions/{execution_id}/custom-data", values
        )
        return replaced


def verify_callback(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    *,
    now: float | None = None,
    tolerance_seconds: int = CALLBACK_TOLERANCE_SECONDS,
) -> dict[str, Any]:
    """The event of a callback, after checking its Standard Webhooks signature and timestamp.

    ``secret`` is the gateway's ``WAITGATE_CALLBACK_SECRET`` (``whsec_…``). Raises
    ``CallbackVerificationError`` when anything does not check out.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        message_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        signatures = lowered["webhook-signature"].split()
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (KeyError, ValueError, binascii.Error):
        raise CallbackVerificationError("missing or malformed webhook headers or secret") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise CallbackVerificationError("webhook-timestamp is outside the tolerance")
    signed = f"{message_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in signatures:
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            event: dict[str, Any] = msgspec.json.decode(body)
            return event
    raise CallbackVerificationError("no webhook-signature matches")
