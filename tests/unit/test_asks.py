"""The asks engine adapters park (approval, form, webhook) and the answers they turn into."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.integrations.asks import Answer, Approval, Form, GatewayLink, Webhook, answer

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "amount": {"type": "integer", "default": 10},
        "reason": {"type": "string"},
    },
}


class Model:
    """Stands for a pydantic model: only ``model_json_schema`` is used."""

    @classmethod
    def model_json_schema(cls) -> dict[str, Any]:
        return SCHEMA


def test_form_sends_its_schema_without_defaults_and_keeps_them_for_the_deadline() -> None:
    form = Form(SCHEMA, title="Refund")
    body = form.wait_body()
    assert body["form"]["schema"]["properties"]["amount"] == {"type": "integer"}
    assert body["form"]["title"] == "Refund"
    assert form.default_data() == {"amount": 10}
    assert SCHEMA["properties"]["amount"]["default"] == 10  # the caller's schema is untouched
    assert Form(SCHEMA, default={"amount": 1}).default_data() == {"amount": 1}
    assert Form(Model).default_data() == {"amount": 10}


def test_form_refuses_what_is_not_a_schema() -> None:
    with pytest.raises(TypeError, match="JSON Schema"):
        Form(["not", "a", "schema"]).wait_body()


def test_deadlines_are_instants() -> None:
    soon = Approval("ok?", deadline=timedelta(minutes=5)).wait_body()["waitTill"]
    assert datetime.fromisoformat(soon) > datetime.now(UTC)
    at = datetime(2030, 1, 1, tzinfo=UTC)
    assert Webhook(deadline=at).wait_body()["waitTill"] == "2030-01-01T00:00:00+00:00"
    assert Approval("ok?").wait_body()["waitTill"] is None
    with pytest.raises(ValueError, match="timezone-aware"):
        Approval("ok?", deadline=datetime(2030, 1, 1)).wait_body()


def test_approval_passes_extra_fields() -> None:
    body = Approval("ok?", "why", extra={"required": 2}).wait_body()
    assert body["approval"] == {"title": "ok?", "description": "why", "required": 2}


@pytest.mark.parametrize(
    ("kind", "payload", "value"),
    [
        ("approval", {"approved": True, "comment": ""}, True),
        ("approval", {"approved": False}, False),
        ("approval", {"approved": "yes"}, "default"),  # not a decision: the default
        ("form", {"formData": {"amount": 3}}, {"amount": 3}),
        ("form", {"body": {"amount": 4}}, {"amount": 4}),
        ("webhook", {"body": {"carrier": "DHL"}, "headers": {}}, {"carrier": "DHL"}),
        ("webhook", "not an object", "default"),
    ],
)
def test_answers_take_the_value_from_the_payload(kind: str, payload: Any, value: Any) -> None:
    got = answer(kind, "default", execution_id=7, resumed_by="form", payload=payload)
    assert got.value == value
    assert got.payload == payload
    assert not got.timed_out
    assert not got.canceled


def test_deadline_and_cancel_take_the_default_but_a_cancel_never_approves() -> None:
    late = answer("approval", True, execution_id=1, resumed_by="timeout", payload=None)
    assert late.approved
    assert late.timed_out
    stopped = answer("approval", True, execution_id=1, resumed_by=None, payload=None, canceled=True)
    assert stopped.value is False
    assert stopped.canceled
    form = answer("form", {"a": 1}, execution_id=1, resumed_by=None, payload=None, canceled=True)
    assert form.value == {"a": 1}


def test_answers_travel_as_json() -> None:
    got = answer("approval", False, execution_id=3, resumed_by="form", payload={"approved": True})
    raw = got.to_json()
    assert Answer.is_json(raw)
    assert Answer.from_json(raw) == got
    assert not Answer.is_json({"value": 1})
    assert not Answer.is_json("yes")


def test_link_from_the_environment_names_what_is_missing() -> None:
    with pytest.raises(RuntimeError, match="WAITGATE_API_KEY, WAITGATE_RELAY_URL"):
        GatewayLink.from_env({"WAITGATE_URL": "http://127.0.0.1:5678"})
    link = GatewayLink.from_env(
        {"WAITGATE_URL": "u", "WAITGATE_API_KEY": "k", "WAITGATE_RELAY_URL": "r"}
    )
    assert link == GatewayLink("u", "k", "r")
