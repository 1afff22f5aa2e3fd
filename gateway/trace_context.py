"""W3C Trace Context (``traceparent``, ``tracestate``): read strictly, kept in canonical form.

A context a caller gives at create or park is stored with the execution or the wait, and the
callback that ends the wait carries it on (see ``docs/tracing.md``). Nothing here needs
OpenTelemetry: with tracing off the context is passed through as given, with tracing on the
spans of ``gateway.otel`` continue it.

A malformed ``traceparent`` is ignored (the request goes on without it, never a 400), and then
so is ``tracestate``, as the W3C recommendation says; a malformed or oversized ``tracestate``
is dropped on its own. What is kept is rebuilt from the parsed parts, never the raw header.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

_PARENT_00 = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_PARENT_NEXT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_KEY = re.compile(
    r"[a-z0-9][_0-9a-z\-*/]{0,255}"
    r"|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13}"
)
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
MAX_TRACESTATE = 512
"""The longest ``tracestate`` kept (the length every vendor must propagate); a longer one is
dropped whole."""
MAX_MEMBERS = 32
ZERO_TRACE = "0" * 32
ZERO_SPAN = "0" * 16


@dataclass(frozen=True)
class TraceContext:
    """A parsed W3C trace context: the caller's trace, its span, flags and vendor state."""

    trace_id: str
    """32 lowercase hex digits, not all zero."""
    span_id: str
    """16 lowercase hex digits, not all zero: the parent of what continues this context."""
    flags: int
    state: str | None = None
    """The ``tracestate`` list, validated, or ``None``."""

    @property
    def traceparent(self) -> str:
        """The ``traceparent`` header value (version 00)."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags:02x}"

    @property
    def sampled(self) -> bool:
        """The caller's sampled flag."""
        return bool(self.flags & 1)

    def headers(self) -> dict[str, str]:
        """``traceparent`` (and ``tracestate`` if any) as headers of a request."""
        if self.state is None:
            return {"traceparent": self.traceparent}
        return {"traceparent": self.traceparent, "tracestate": self.state}


@dataclass(frozen=True)
class WaitTrace:
    """What the spans of an ended wait need: its instants, how it ended, and the context its
    park (or its execution's create) kept."""

    execution_id: int
    seq: int
    parked_at: int
    resumed_at: int | None
    resumed_by: str | None
    context: TraceContext | None


def parse_traceparent(value: str) -> TraceContext | None:
    """A ``traceparent`` value, or ``None`` if it is not one (W3C Trace Context level 1:
    version 00 exactly; a later version by its version-00 prefix; ``ff`` and all-zero ids
    refused)."""
    found = _PARENT_00.fullmatch(value)
    if found is not None:
        trace_id, span_id, flags = found.groups()
    else:
        later = _PARENT_NEXT.fullmatch(value)
        if later is None or later.group(1) in ("00", "ff"):
            return None
        trace_id, span_id, flags = later.group(2, 3, 4)
        flags = f"{int(flags, 16) & 1:02x}"  # only the flags version 00 defines
    if trace_id == ZERO_TRACE or span_id == ZERO_SPAN:
        return None
    return TraceContext(trace_id, span_id, int(flags, 16))


def parse_tracestate(values: Sequence[str]) -> str | None:
    """The ``tracestate`` header values joined into one valid list, or ``None`` when there is
    none, it is malformed (a bad key or value, a repeated key, more than 32 members), or it is
    longer than ``MAX_TRACESTATE``."""
    joined = ",".join(values)
    if not joined or len(joined) > MAX_TRACESTATE:
        return None
    members: list[str] = []
    keys: set[str] = set()
    for raw in joined.split(","):
        member = raw.strip(" \t")
        if not member:
            continue
        key, eq, value = member.partition("=")
        if not eq or not _KEY.fullmatch(key) or not _VALUE.fullmatch(value) or key in keys:
            return None
        keys.add(key)
        members.append(f"{key}={value}")
    if not members or len(members) > MAX_MEMBERS:
        return None
    return ",".join(members)


def parse(traceparent: Sequence[str], tracestate: Sequence[str] = ()) -> TraceContext | None:
    """The context of a request's ``traceparent`` and ``tracestate`` header values (each
    header may come several times): ``None`` unless there is exactly one valid
    ``traceparent``."""
    if len(traceparent) != 1:
        return None
    context = parse_traceparent(traceparent[0])
    if context is None:
        return None
    state = parse_tracestate(tracestate)
    return context if state is None else TraceContext(*_parts(context), state=state)


def from_headers(headers: Mapping[str, str]) -> TraceContext | None:
    """The context of a request's headers (Starlette's ``Headers``: each value of a repeated
    header counts)."""
    raw = getattr(headers, "raw", None)
    if raw is None:
        parent = headers.get("traceparent")
        state = headers.get("tracestate")
        return parse([] if parent is None else [parent], [] if state is None else [state])
    return from_raw(raw)


def from_raw(raw: Iterable[tuple[bytes, bytes]]) -> TraceContext | None:
    """The context of ASGI headers (lowercase names, as servers give them)."""
    parents: list[str] = []
    states: list[str] = []
    for name, value in raw:
        if name == b"traceparent":
            parents.append(value.decode("latin-1"))
        elif name == b"tracestate":
            states.append(value.decode("latin-1"))
    return parse(parents, states) if parents else None


def stored(traceparent: str | None, tracestate: str | None) -> TraceContext | None:
    """A context as a row keeps it (checked again: a row is read as strictly as a header)."""
    if traceparent is None:
        return None
    return parse([traceparent], [] if tracestate is None else [tracestate])


def _parts(context: TraceContext) -> tuple[str, str, int]:
    return context.trace_id, context.span_id, context.flags
