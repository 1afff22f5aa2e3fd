"""What an engine asks for while it waits, and the answer it gets back.

Shared by the adapters that park one waitgate execution per question (LangGraph, Celery): an
``Approval`` (Approve / Reject on a signed page), a ``Form`` (a JSON Schema form) or a
``Webhook`` (a partner calls the signed resume URL). Each carries the ``default`` the engine
continues with when the deadline passes. ``park`` creates and parks the execution; ``answer``
turns the callback (or the deadline, or a cancel) into an ``Answer`` the engine code reads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from gateway.client import Execution, WaitgateClient

AskKind = Literal["approval", "form", "webhook"]
CANCELED = "canceled"
"""``Answer.resumed_by`` when the execution was stopped in waitgate instead of resumed."""


@dataclass(frozen=True)
class GatewayLink:
    """Where the gateway is, the API key that parks, and the relay's URL (the callbackUrl)."""

    url: str
    api_key: str
    relay_url: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> GatewayLink:
        """``WAITGATE_URL``, ``WAITGATE_API_KEY`` and ``WAITGATE_RELAY_URL``."""
        missing = [
            name
            for name in ("WAITGATE_URL", "WAITGATE_API_KEY", "WAITGATE_RELAY_URL")
            if not environ.get(name)
        ]
        if missing:
            raise RuntimeError(f"set {', '.join(missing)} to park waits in waitgate")
        return cls(
            environ["WAITGATE_URL"], environ["WAITGATE_API_KEY"], environ["WAITGATE_RELAY_URL"]
        )

    def client(self) -> WaitgateClient:
        """An API client of the gateway (close it after use)."""
        return WaitgateClient(self.url, self.api_key)


Deadline = datetime | timedelta | None
"""An instant (timezone-aware), a delay from now, or no deadline."""


def _deadline(value: Deadline) -> str | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = datetime.now(UTC) + value
    if value.tzinfo is None:
        raise ValueError("the deadline must be timezone-aware")
    return value.isoformat()


@dataclass(frozen=True)
class Approval:
    """Approve or Reject on a signed page; ``default`` is the decision at the deadline.

    ``extra`` goes into waitgate's ``approval`` as is (``approvers``, ``required``,
    ``options``, …: see the API reference)."""

    title: str
    description: str | None = None
    default: bool = False
    deadline: Deadline = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    kind: Literal["approval"] = field(default="approval", init=False)

    def wait_body(self) -> dict[str, Any]:
        """The body of ``POST /executions/{id}/wait``."""
        approval: dict[str, Any] = {"title": self.title, **self.extra}
        if self.description:
            approval["description"] = self.description
        return {"approval": approval, "waitTill": _deadline(self.deadline)}


@dataclass(frozen=True)
class Form:
    """A form rendered from a JSON Schema (an object schema, or anything with pydantic's
    ``model_json_schema()``); ``default`` is the data at the deadline, by default the
    properties' own ``default`` values (which are taken out of the schema waitgate gets)."""

    schema: Any
    title: str | None = None
    description: str | None = None
    default: Mapping[str, Any] | None = None
    deadline: Deadline = None

    kind: Literal["form"] = field(default="form", init=False)

    def json_schema(self) -> dict[str, Any]:
        """The schema as a dict (a pydantic model's own schema, when given a model)."""
        make = getattr(self.schema, "model_json_schema", None)
        found = make() if callable(make) else self.schema
        if not isinstance(found, Mapping):
            raise TypeError("Form.schema must be a JSON Schema object or a pydantic model")
        return dict(found)

    def default_data(self) -> dict[str, Any]:
        """What the form resumes with at the deadline."""
        if self.default is not None:
            return dict(self.default)
        properties = self.json_schema().get("properties", {})
        return {
            name: spec["default"]
            for name, spec in properties.items()
            if isinstance(spec, Mapping) and "default" in spec
        }

    def wait_body(self) -> dict[str, Any]:
        """The body of ``POST /executions/{id}/wait``: the schema without ``default``s."""
        schema = self.json_schema()
        properties = schema.get("properties", {})
        schema["properties"] = {
            name: {k: v for k, v in spec.items() if k != "default"}
            for name, spec in properties.items()
        }
        form: dict[str, Any] = {"schema": schema}
        if self.title:
            form["title"] = self.title
        if self.description:
            form["description"] = self.description
        return {"form": form, "waitTill": _deadline(self.deadline)}


@dataclass(frozen=True)
class Webhook:
    """A partner calls the signed resume URL (``POST``); its JSON body is the answer."""

    default: Any = None
    deadline: Deadline = None
    http_method: str = "POST"

    kind: Literal["webhook"] = field(default="webhook", init=False)

    def default_data(self) -> Any:
        """What the wait resumes with at the deadline."""
        return self.default

    def wait_body(self) -> dict[str, Any]:
        """The body of ``POST /executions/{id}/wait``."""
        return {"webhook": {"httpMethod": self.http_method}, "waitTill": _deadline(self.deadline)}


Ask = Approval | Form | Webhook


def default_of(ask: Ask) -> Any:
    """The value an ask resumes with at its deadline."""
    if isinstance(ask, Approval):
        return ask.default
    return ask.default_data()


@dataclass(frozen=True)
class Parked:
    """A parked execution and the link to hand out for it."""

    execution_id: int
    kind: AskKind
    url: str
    """Where the answer is given: the approval page, the form, or the resume URL."""
    resume_url: str | None
    deadline: str | None


def _parked(execution: Execution, kind: AskKind) -> Parked:
    raw = execution.raw
    url = {"approval": raw.get("approvalUrl"), "form": raw.get("resumeFormUrl")}.get(kind)
    link = url or raw.get("resumeUrl")
    if not link:
        raise RuntimeError(f"execution {execution.id} has no link to answer it")
    return Parked(execution.id, kind, link, raw.get("resumeUrl"), raw.get("waitTill"))


async def park(
    client: WaitgateClient,
    ask: Ask,
    *,
    workflow_id: str,
    custom_data: Mapping[str, str],
    callback_url: str,
) -> Parked:
    """Create an execution whose callbacks go to ``callback_url``, parked on ``ask`` in the
    same call (a refused ask leaves no execution behind)."""
    parked = await client.create(
        workflow_id, custom_data=custom_data, callback_url=callback_url, wait=ask.wait_body()
    )
    return _parked(parked, ask.kind)


async def find_parked(
    client: WaitgateClient, kind: AskKind, custom_data: Mapping[str, str]
) -> Parked | None:
    """A waiting execution with all of ``custom_data`` (parked before a crash or a re-run)."""
    filters = {f"customData[{k}]": v for k, v in custom_data.items()}
    found, _ = await client.list(status="waiting", **filters)
    if not found:
        return None
    full = await client.get(found[0].id, include_data=True)
    return _parked(full, kind)


@dataclass(frozen=True)
class Answer:
    """What came back: ``value`` is the decision (approval: ``True``/``False``), the form's
    data, or the webhook's body; at the deadline (``timed_out``) the ask's default; when the
    execution was stopped (``canceled``) ``False`` for an approval, else the default."""

    value: Any
    resumed_by: str
    """``approval``, ``form``, ``webhook``, ``api``, ``event``, ``timeout`` or ``canceled``."""
    execution_id: int
    payload: Any = None
    """waitgate's payload as it came (``None`` at the deadline and on cancel)."""

    @property
    def approved(self) -> bool:
        """Whether an approval was approved (by a person, or by a ``True`` default)."""
        return self.value is True

    @property
    def timed_out(self) -> bool:
        """Whether the deadline decided."""
        return self.resumed_by == "timeout"

    @property
    def canceled(self) -> bool:
        """Whether the execution was stopped in waitgate."""
        return self.resumed_by == CANCELED

    def to_json(self) -> dict[str, Any]:
        """A JSON object (what travels through the engine: a resume value, a task argument)."""
        return {
            "value": self.value,
            "resumedBy": self.resumed_by,
            "executionId": self.execution_id,
            "payload": self.payload,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Answer:
        """The answer ``to_json`` wrote."""
        return cls(raw["value"], str(raw["resumedBy"]), int(raw["executionId"]), raw.get("payload"))

    @staticmethod
    def is_json(raw: object) -> bool:
        """Whether ``raw`` looks like what ``to_json`` writes."""
        return isinstance(raw, Mapping) and {"value", "resumedBy", "executionId"} <= raw.keys()


def _value(kind: str, payload: Any, default: Any) -> Any:
    if not isinstance(payload, Mapping):
        return default
    if kind == "approval":
        approved = payload.get("approved")
        return approved if isinstance(approved, bool) else default
    if kind == "form":
        return payload.get("formData", payload.get("body", default))
    return payload.get("body", default)


def answer(
    kind: str,
    default: Any,
    *,
    execution_id: int,
    resumed_by: str | None,
    payload: Any,
    canceled: bool = False,
) -> Answer:
    """The answer of a resumed (or canceled) wait of ``kind`` with this ``default``."""
    if canceled:
        value = False if kind == "approval" else default
        return Answer(value, CANCELED, execution_id)
    by = resumed_by or "api"
    if by == "timeout":
        return Answer(default, by, execution_id)
    return Answer(_value(kind, payload, default), by, execution_id, payload)
