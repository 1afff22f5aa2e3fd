"""W3C trace context as waitgate reads it: strictly, kept in canonical form, garbage ignored."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from gateway.trace_context import (
    MAX_TRACESTATE,
    TraceContext,
    from_headers,
    parse,
    parse_traceparent,
    parse_tracestate,
    stored,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{SPAN}-01"


def test_a_valid_traceparent_is_kept_in_canonical_form() -> None:
    context = parse_traceparent(VALID)
    assert context == TraceContext(TRACE, SPAN, 1)
    assert context.traceparent == VALID
    assert context.sampled
    assert context.headers() == {"traceparent": VALID}


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        VALID.upper(),  # hex is lowercase only
        f"00-{TRACE}-{SPAN}-1",  # flags are two digits
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has no more fields
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE}-{SPAN}-01",  # version ff is invalid
        f"00-{TRACE[:-1]}g-{SPAN}-01",
        f"00_{TRACE}_{SPAN}_01",
        f" {VALID}",
        f"{VALID}\r\nx-injected: 1",
        f"00-{TRACE}{TRACE}-{SPAN}-01",
        "00-" + "a" * 5000,
    ],
)
def test_a_malformed_traceparent_is_ignored(value: str) -> None:
    assert parse_traceparent(value) is None
    assert parse([value], ["vendor=kept"]) is None  # and so is its tracestate


def test_a_later_version_is_read_by_its_version_00_prefix() -> None:
    context = parse_traceparent(f"cc-{TRACE}-{SPAN}-03-whatever-comes-next")
    assert context == TraceContext(TRACE, SPAN, 1)  # only the flags version 00 knows
    assert parse_traceparent(f"cc-{TRACE}-{SPAN}-01x") is None


def test_tracestate_members_are_validated_and_joined() -> None:
    assert parse_tracestate(["rojo=00f067aa0ba902b7", " congo=t61rcWkgMzE"]) == (
        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    )
    assert parse_tracestate(["tenant@vendor=x,,"]) == "tenant@vendor=x"
    assert parse_tracestate([]) is None


@pytest.mark.parametrize(
    "value",
    [
        "novalue",
        "UPPER=1",
        "a=b,a=c",  # a key twice
        "a=x=y",  # "=" inside a value
        "a=comma,=x",
        "a=x\x00y",
        "a=" + "v" * 257,
        ",".join(f"k{i}=v" for i in range(33)),  # more than 32 members
    ],
)
def test_a_malformed_tracestate_is_dropped_alone(value: str) -> None:
    assert parse_tracestate([value]) is None
    assert parse([VALID], [value]) == TraceContext(TRACE, SPAN, 1)


def test_an_oversized_tracestate_is_dropped() -> None:
    members = [f"k{i}={'v' * 30}" for i in range(20)]
    big = ",".join(members)
    assert len(big) > MAX_TRACESTATE
    assert parse_tracestate([big]) is None
    assert parse([VALID], [big]) == TraceContext(TRACE, SPAN, 1)


def test_headers_with_several_traceparents_carry_none() -> None:
    twice = Headers(raw=[(b"traceparent", VALID.encode()), (b"traceparent", VALID.encode())])
    assert from_headers(twice) is None
    once = Headers(
        raw=[(b"traceparent", VALID.encode()), (b"tracestate", b"a=1"), (b"tracestate", b"b=2")]
    )
    assert from_headers(once) == TraceContext(TRACE, SPAN, 1, "a=1,b=2")
    assert from_headers(Headers(raw=[])) is None
    assert from_headers({"traceparent": VALID}) == TraceContext(TRACE, SPAN, 1)


def test_a_row_is_read_as_strictly_as_a_header() -> None:
    assert stored(VALID, "a=1") == TraceContext(TRACE, SPAN, 1, "a=1")
    assert stored("tampered", "a=1") is None
    assert stored(None, None) is None
