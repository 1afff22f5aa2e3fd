"""Paths into an event (``eventIdPath``, match keys): lookup never raises, check names the rule."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import Headers

from gateway.errors import InvalidInput
from gateway.event_paths import MAX_PATH_DEPTH, MAX_PATH_LENGTH, check_path, lookup

EVENT: Any = msgspec.json.decode(
    b"""{
      "id": "evt_1",
      "data": {"object": {"metadata": {"orderId": "A-17"}, "amount": 4200, "paid": true,
               "ratio": 0.5, "refunds": [], "note": null, "big": 123456789012345678901234567890}},
      "items": [{"sku": "x"}, {"sku": "y", "qty": 2}],
      "a.b": "dotted key"
    }"""
)
HEADERS = Headers({"X-GitHub-Delivery": "72d3162e", "webhook-id": "msg_1"})


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("id", "evt_1"),
        ("data.object.metadata.orderId", "A-17"),
        ("data.object.amount", "4200"),
        ("data.object.paid", "true"),
        ("data.object.ratio", "0.5"),
        ("data.object.big", "123456789012345678901234567890"),
        ("items.0.sku", "x"),
        ("items.1.qty", "2"),
        ("header:X-GitHub-Delivery", "72d3162e"),
        ("header:x-github-delivery", "72d3162e"),
        ("header:webhook-id", "msg_1"),
    ],
)
def test_lookup_finds(path: str, value: str) -> None:
    assert lookup(path, EVENT, HEADERS) == value


@pytest.mark.parametrize(
    "path",
    [
        "data",  # an object
        "items",  # a list
        "data.object.refunds",
        "data.object.note",  # null
        "data.object.missing",
        "id.more",  # below a string
        "items.2.sku",  # out of range
        "items.-1.sku",
        "items.01.sku",  # not written canonically
        "items.\u0660.sku",  # an Arabic-Indic zero
        "items.99999999999999999999.sku",
        "items.x",
        "a.b",  # a key with a dot cannot be reached
        "",
        "header:X-Missing",
        "header:",
        "header:bad name",
        "header:ünïcode",
    ],
)
def test_lookup_misses(path: str) -> None:
    assert lookup(path, EVENT, HEADERS) is None


@pytest.mark.parametrize("body", [None, "text", 42, [], [1], {"id": {"x": 1}}])
def test_lookup_on_bodies_that_are_not_objects(body: Any) -> None:
    assert lookup("id", body, {}) is None


def test_lookup_in_a_plain_lower_case_dict_of_headers() -> None:
    assert lookup("header:Webhook-Id", None, {"webhook-id": "m"}) == "m"


@settings(max_examples=200, deadline=None)
@given(
    path=st.text(max_size=60),
    body=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=10,
    ),
)
def test_lookup_never_raises(path: str, body: Any) -> None:
    found = lookup(path, body, {})
    assert found is None or isinstance(found, str)


@pytest.mark.parametrize(
    "path",
    [
        "id",
        "data.object.metadata.orderId",
        "items.0.sku",
        "header:X-GitHub-Delivery",
        "event_id",
        ".".join(["a"] * MAX_PATH_DEPTH),
        "a" * MAX_PATH_LENGTH,
        "with space.ünïcode",
    ],
)
def test_check_path_accepts(path: str) -> None:
    assert check_path(path) == path


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("", "1 to 200 characters"),
        ("a" * (MAX_PATH_LENGTH + 1), "1 to 200 characters"),
        (".".join(["a"] * (MAX_PATH_DEPTH + 1)), "at most 16 segments"),
        ("a..b", "none empty"),
        (".a", "none empty"),
        ("a.", "none empty"),
        ("a\nb", "control characters"),
        ("header:", "must name an HTTP header"),
        ("header:X Bad", "must name an HTTP header"),
    ],
)
def test_check_path_refuses_naming_the_field(path: str, rule: str) -> None:
    with pytest.raises(InvalidInput, match=f"^eventIdPath .*{rule}"):
        check_path(path)
    with pytest.raises(InvalidInput, match=r"^events\[0\]\.match key"):
        check_path(path, "events[0].match key")
