"""Traces, optional: what the rest of the gateway calls, each a no-op while tracing is off.

Tracing is on when the ``otel`` extra is installed and the standard ``OTEL_*`` variables ask
for an exporter (``configure_from_env``), or a test installs a ``gateway.otel.Tracing``
(``use``). Only then is ``gateway.otel``, and OpenTelemetry with it, imported; while it is off
the request path is untouched (no middleware is added, see ``middleware``) and every hook
below returns at its first line.

With tracing off a ``traceparent`` given at create or park is still kept and carried on by
the callback as given (pass-through, no spans); see ``docs/tracing.md``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, ParamSpec, Protocol, TypeVar

from starlette.middleware import Middleware

from gateway.errors import ConfigError
from gateway.trace_context import TraceContext

if TYPE_CHECKING:
    from gateway.domain import ResumedBy, TimedOut
    from gateway.otel import Tracing
    from gateway.outbox_model import Delivery, DeliveryAttempt
    from persistence.base import Store

log = logging.getLogger("waitgate.tracing")
P = ParamSpec("P")
T = TypeVar("T")
_active: Tracing | None = None
EXPORTERS = frozenset({"otlp", "console"})


class AttemptSpan(Protocol):
    """The span of one delivery attempt, told how it went."""

    def done(self, attempt: DeliveryAttempt) -> None:
        """Record the attempt's outcome (status code or error) on the span."""


class _NoAttempt:
    def done(self, attempt: DeliveryAttempt) -> None:
        """Nothing to record: tracing is off."""


_NO_ATTEMPT = contextlib.nullcontext(_NoAttempt())


def use(tracing: Tracing | None) -> None:
    """Trace with ``tracing`` from now on (``None``: stop tracing)."""
    global _active  # noqa: PLW0603 - one tracer per process, as OpenTelemetry's own global
    _active = tracing


def active() -> Tracing | None:
    """The tracer in use, if tracing is on."""
    return _active


def wanted(environ: Mapping[str, str]) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces: not ``OTEL_SDK_DISABLED``, and an
    exporter named (``OTEL_TRACES_EXPORTER`` other than ``none``) or an OTLP endpoint set."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return exporters != "none"
    return any(
        environ.get(name, "").strip()
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """Turn tracing on if the environment asks for it and the ``otel`` extra is installed;
    whether it is on. Asked for but not installed: a warning, and tracing stays off."""
    env = os.environ if environ is None else environ
    if not wanted(env):
        return False
    exporters = {e.strip() for e in env.get("OTEL_TRACES_EXPORTER", "otlp").lower().split(",")}
    unknown = exporters - EXPORTERS - {""}
    if unknown:
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER: {', '.join(sorted(unknown))} is not one of "
            f"{', '.join(sorted(EXPORTERS))}"
        )
    try:
        from gateway import otel  # noqa: PLC0415 - imported only when tracing is asked for
    except ImportError as exc:
        log.warning(
            "OTEL_* variables ask for traces, but OpenTelemetry is not installed (%s); "
            "install waitgate[otel]",
            exc,
            extra={"action": "tracing.unavailable"},
        )
        return False
    use(otel.from_env(env, exporters - {""} or {"otlp"}))
    log.info("tracing on", extra={"action": "tracing.started"})
    return True


def middleware() -> list[Middleware]:
    """The HTTP span middleware while tracing is on; none (not even a pass-through) when off."""
    if _active is None:
        return []
    from gateway.otel import HttpSpans  # noqa: PLC0415 - only when tracing is on

    return [Middleware(HttpSpans, tracing=_active)]


def traced(name: str) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """Run the decorated use case in a span ``name`` (child of the current one)."""

    def decorate(function: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(function)
        async def run(*args: P.args, **kwargs: P.kwargs) -> T:
            if _active is None:
                return await function(*args, **kwargs)
            with _active.span(name):
                return await function(*args, **kwargs)

        return run

    return decorate


def annotate(execution_id: int, seq: int | None = None) -> None:
    """Name the execution (and wait) on the current span."""
    if _active is not None:
        _active.annotate(execution_id, seq)


def kept(given: TraceContext | None, *, always: bool = False) -> TraceContext | None:
    """The context to keep with an execution (``always``: at create) or a wait (at park, only
    when the request gave one): with tracing on, the current span's, which continues the
    given one; off, the given one as it came."""
    if _active is None:
        return given
    return _active.current() if given is not None or always else None


def started() -> int:
    """Now, in nanoseconds, to start a span later at (0 while tracing is off)."""
    return 0 if _active is None else time.time_ns()


async def resumed(
    store: Store, waits: Sequence[tuple[int, int]], by: ResumedBy, since: int
) -> None:
    """The spans of waits that just ended (``(execution id, seq)``): each wait from park to
    resume, and its resume (from ``since``), in the trace the wait kept."""
    if _active is not None and waits:
        await _active.resumed(store, waits, by, since)


async def timers_fired(store: Store, claimed: Sequence[TimedOut], since: int) -> None:
    """The span of a scheduler claim (from ``since``) and of each wait it resumed."""
    if _active is not None and claimed:
        await _active.timers_fired(store, claimed, since)


def delivery_attempt(
    delivery: Delivery,
) -> contextlib.AbstractContextManager[AttemptSpan]:
    """A span around one attempt to deliver, in the trace the delivery continues."""
    if _active is None:
        return _NO_ATTEMPT
    return _active.delivery_attempt(delivery)


def callback_headers(delivery: Delivery) -> dict[str, str]:
    """The trace headers a callback carries: the attempt span's context (tracing on), or the
    context kept for the delivery, as given (off); none for a notification."""
    if delivery.channel is not None:
        return {}
    if _active is not None:
        current = _active.current()
        return {} if current is None else current.headers()
    return {} if delivery.trace is None else delivery.trace.headers()
