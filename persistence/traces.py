"""Trace contexts kept across the wait: the execution's (given at create), the wait's (given at
park) and the delivery's (copied when its transition writes the callback), so the trace goes on
wherever and whenever the wait ends (another replica, after a restart, a retry of the callback).

The execution's and the delivery's are written by the statement that writes their row (their
``traceparent`` and ``tracestate`` parameters); the wait's is a statement only when there is a
context to keep: without tracing and without a ``traceparent`` from the caller nothing here
runs, and nothing here reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway.trace_context import TraceContext, WaitTrace, stored
from persistence import script as q
from persistence.script import Row, Script

NO_TRACE: dict[str, Any] = {"traceparent": None, "tracestate": None}
"""The parameters of a statement that keeps no context."""


def _params(context: TraceContext) -> dict[str, Any]:
    return {"traceparent": context.traceparent, "tracestate": context.state}


def context_of(row: Row | None) -> TraceContext | None:
    """The context a row keeps (``None`` for no row, or none kept)."""
    if row is None:
        return None
    return stored(row["trace_parent"], row["trace_state"])


def for_execution(context: TraceContext | None) -> dict[str, Any]:
    """The context given at create, kept with the execution as its current context
    (``create_execution``'s ``traceparent`` and ``tracestate``)."""
    return NO_TRACE if context is None else _params(context)


def keep_for_wait(execution_id: int, seq: int, context: TraceContext | None) -> Script[None]:
    """Keep the context given at park with the wait, and as its execution's current context
    (which later waits parked without one, and the execution's other callbacks, continue)."""
    if context is not None:
        params = {"id": execution_id, "seq": seq, **_params(context)}
        yield from q.count("set_wait_trace", params)
        yield from q.count("set_execution_trace", params)


def for_delivery(execution: Row, wait: Row | None) -> dict[str, Any]:
    """The context a callback continues, written with its delivery (``insert_delivery``'s
    ``traceparent`` and ``tracestate``): the wait's it announces, else the execution's current
    one (both rows are read already: this adds no read)."""
    context = context_of(wait) or context_of(execution)
    return NO_TRACE if context is None else _params(context)


def wait_traces(keys: Iterable[tuple[int, int]]) -> Script[list[WaitTrace]]:
    """The instants and trace context of each ended wait ``(execution id, seq)`` (a wait that
    is gone, deleted meanwhile, is left out)."""
    found = []
    for execution_id, seq in keys:
        row = yield from q.row("wait_trace", {"id": execution_id, "seq": seq})
        if row is not None:
            found.append(
                WaitTrace(
                    execution_id=row["execution_id"],
                    seq=row["seq"],
                    parked_at=row["parked_at"],
                    resumed_at=row["resumed_at"],
                    resumed_by=row["resumed_by"],
                    context=context_of(row),
                )
            )
    return found
