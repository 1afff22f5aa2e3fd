"""Forms from a JSON Schema, attacked with generated input: any JSON given as ``form.schema`` is
a form or an ``InvalidInput`` naming the problem (never another exception), and any posted text
or API data is typed and judged without raising."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import InvalidInput
from gateway.form_schema import form_spec, refusal, schema_fields, typed_values

KEYWORDS = [
    "type",
    "title",
    "description",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "format",
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
    "required",
    "properties",
    "additionalProperties",
    "$schema",
    "pattern",
    "$ref",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["string", "integer", "number", "boolean", "array", "object", "email", "date"]),
    st.text(max_size=5),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYWORDS) | st.text(max_size=3), inner, max_size=4),
    ),
    max_leaves=20,
)
PROPERTY = st.dictionaries(st.sampled_from(KEYWORDS), JSON, max_size=5)
SCHEMA = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["object", "object", "array"]),
        "properties": st.dictionaries(
            st.sampled_from(["a", "b", "c d", "é"]), PROPERTY, max_size=3
        ),
    },
    optional={"required": JSON, "additionalProperties": JSON, "title": JSON},
)


def _spec_or_refusal(schema: dict[str, Any]) -> None:
    try:
        spec = form_spec(schema, None, "")
    except InvalidInput as exc:
        message = str(exc)
    else:
        assert spec.schema is schema
        schema_fields(schema)
        return
    assert message.startswith("form")


@settings(max_examples=400, deadline=None)
@given(SCHEMA)
def test_any_schema_is_a_form_or_a_named_refusal(schema: dict[str, Any]) -> None:
    _spec_or_refusal(schema)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=5), JSON, max_size=4))
def test_any_json_object_is_a_form_or_a_named_refusal(schema: dict[str, Any]) -> None:
    _spec_or_refusal(schema)


FORM: dict[str, Any] = {
    "type": "object",
    "properties": {
        "n": {"type": "integer", "minimum": 1, "maximum": 5},
        "x": {"type": "number"},
        "s": {"type": "string", "format": "email", "maxLength": 20},
        "d": {"type": "string", "format": "date"},
        "b": {"type": "boolean"},
        "e": {"type": "integer", "enum": [1, 2]},
        "m": {"type": "array", "items": {"enum": ["p", "q"]}, "uniqueItems": True},
    },
    "required": ["n", "m"],
    "additionalProperties": False,
}
FIELDS = schema_fields(FORM)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*FORM["properties"], "zz"]), st.lists(st.text())))
def test_any_submission_is_typed_and_judged(posted: dict[str, list[str]]) -> None:
    data = typed_values(FIELDS, lambda name: posted.get(name, []))
    judged = refusal(FORM, data)
    assert judged is None or all(p.message for p in judged.problems)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_any_api_data_is_judged(data: Any) -> None:
    judged = refusal(FORM, data)
    if not isinstance(data, dict):
        assert judged is not None
        assert judged.problems[0].field == ""


def test_numbers_as_people_type_them() -> None:
    def typed(text: str) -> Any:
        return typed_values(FIELDS, lambda name: [text] if name in "nx" else [])

    assert typed(" 3 ") == {"n": 3, "x": 3, "b": False}
    assert typed("3.0") == {"n": 3, "x": 3.0, "b": False}
    assert typed("1e2")["x"] == 100.0
    assert typed("1" * 40)["n"] == float("1" * 40)
    assert typed("1_000") == {"n": "1_000", "x": "1_000", "b": False}
    assert typed("inf")["x"] == "inf"
    assert typed("1e999")["x"] == "1e999"
