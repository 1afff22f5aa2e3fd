"""Pydantic models as waitgate forms: what ``form_schema`` writes is what waitgate's own form
check (``gateway.form_schema.form_spec``) takes, and what a form cannot show is refused by name
when the flow asks, not when the wait parks."""

from __future__ import annotations

import datetime
from enum import StrEnum
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from gateway.form_schema import form_spec, refusal, schema_fields
from gateway.integrations.prefect import NotAFormError, form_schema
from gateway.integrations.prefect.forms import defaults


class Size(StrEnum):
    SMALL = "small"
    LARGE = "large"


class Order(BaseModel):
    """An order to ship."""

    customer: str = Field(max_length=80, description="Who ordered")
    email: str | None = None
    parcels: int = Field(1, ge=1, le=10)
    weight: float = 0.5
    size: Size = Size.SMALL
    speed: Literal["slow", "fast"] = "slow"
    only: Literal["yes"] = "yes"
    extras: list[Literal["gift", "insured"]] = []
    ship_on: datetime.date | None = None
    urgent: bool = False


def test_a_model_becomes_a_schema_waitgate_takes_with_each_field() -> None:
    schema = form_schema(Order, "Ship it?")
    spec = form_spec(schema, None, "")
    assert spec.title == "Ship it?"
    assert spec.description == "An order to ship."
    fields = {f.name: f for f in schema_fields(schema)}
    assert fields["customer"].required
    assert fields["customer"].max_length == 80
    assert not fields["email"].required
    assert fields["parcels"].type == "number"
    assert (fields["parcels"].minimum, fields["parcels"].maximum) == (1, 10)
    assert fields["size"].options == ("small", "large")
    assert fields["speed"].options == ("slow", "fast")
    assert fields["only"].options == ("yes",)
    assert fields["extras"].type == "checkboxes"
    assert fields["ship_on"].type == "date"
    assert fields["urgent"].type == "checkbox"
    assert fields["ship_on"].label == "Ship On"


def test_the_schema_refuses_what_the_model_refuses() -> None:
    schema = form_schema(Order)
    assert refusal(schema, {"customer": "Ann", "parcels": 3, "size": "large"}) is None
    refused = refusal(schema, {"customer": "x" * 81, "parcels": 11, "speed": "warp", "more": 1})
    assert refused is not None
    assert {p.field for p in refused.problems} >= {"customer", "parcels", "speed"}


class Nested(BaseModel):
    order: Order


class Timed(BaseModel):
    at: datetime.datetime


class Patterned(BaseModel):
    code: str = Field(pattern="^[A-Z]+$")


class Either(BaseModel):
    value: int | str


class Empty(BaseModel):
    pass


@pytest.mark.parametrize(
    ("model", "words"),
    [
        (Nested, "Nested.order"),
        (Timed, "format 'date-time'"),
        (Patterned, "'pattern'"),
        (Either, "one type"),
        (Empty, "no fields"),
    ],
)
def test_what_a_form_cannot_show_is_refused_by_name(model: type[BaseModel], words: str) -> None:
    with pytest.raises(NotAFormError, match=words):
        form_schema(model)


def test_defaults_are_the_model_built_from_nothing() -> None:
    class Settled(BaseModel):
        parcels: int = 2
        size: Size = Size.LARGE

    assert defaults(Settled) == {"parcels": 2, "size": "large"}
    assert defaults(Order) is None
