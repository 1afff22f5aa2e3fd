"""OpenTelemetry spans of waitgate (the ``otel`` extra), imported only when tracing is on.

The spans (``docs/tracing.md`` lists them with their attributes):

- ``waitgate.create`` and ``waitgate.park``: the use cases, children of the request's span;
- ``waitgate.wait``: one wait, from its park to its resume (the store's instants), and
  ``waitgate.resume``: what ended it; both children of the context the wait kept (its park's,
  else its create's), whichever replica ends it and whenever, linked to the span that did it
  (the request, or the scheduler's ``waitgate.scheduler.claim``);
- ``waitgate.delivery``: one attempt to deliver a callback (kind client), child of the context
  its delivery kept; the callback's ``traceparent`` is this span's;
- the request spans of ``gateway.otel_http``.

No attribute holds a URL's path or query, a header, a body or an error text: signatures,
tokens and secrets travel there.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence, Set
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from gateway import __version__

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter
from gateway.domain import ResumedBy, TimedOut
from gateway.errors import ConfigError
from gateway.otel_http import HttpSpans, remote
from gateway.outbox_model import Delivery, DeliveryAttempt
from gateway.trace_context import TraceContext
from persistence.base import Store

__all__ = ["HttpSpans", "Tracing", "from_env"]

EXECUTION_ID = "waitgate.execution.id"
WAIT_SEQ = "waitgate.wait.seq"
RESUMED_BY = "waitgate.wait.resumed_by"
MS = 1_000_000
"""Nanoseconds in a millisecond (the store's instants are milliseconds)."""


class _Attempt:
    """The span of one delivery attempt."""

    def __init__(self, span: Span) -> None:
        self._span = span

    def done(self, attempt: DeliveryAttempt) -> None:
        """Its status code; a failed attempt's error type (never its text: it may hold the
        target's URL)."""
        if attempt.status_code is not None:
            self._span.set_attribute("http.response.status_code", attempt.status_code)
        if not attempt.succeeded:
            error = "_OTHER" if attempt.status_code is None else str(attempt.status_code)
            self._span.set_attribute("error.type", error)
            self._span.set_status(Status(StatusCode.ERROR))


class Tracing:
    """The spans waitgate makes, from one tracer provider."""

    def __init__(self, provider: trace.TracerProvider) -> None:
        self.tracer = provider.get_tracer("waitgate", __version__)

    @contextlib.contextmanager
    def span(self, name: str) -> Iterator[Span]:
        """A span ``name`` around a block, child of the current span. An exception marks it
        failed with its type only (its message may quote what a caller sent)."""
        with self.tracer.start_as_current_span(
            name, record_exception=False, set_status_on_exception=False
        ) as current:
            try:
                yield current
            except BaseException as exc:
                current.set_attribute("error.type", type(exc).__qualname__)
                current.set_status(Status(StatusCode.ERROR))
                raise

    def annotate(self, execution_id: int, seq: int | None) -> None:
        """Name the execution (and wait) on the current span."""
        current = trace.get_current_span()
        current.set_attribute(EXECUTION_ID, execution_id)
        if seq is not None:
            current.set_attribute(WAIT_SEQ, seq)

    def current(self) -> TraceContext | None:
        """The current span's context, as it is kept and sent on."""
        found = trace.get_current_span().get_span_context()
        if not found.is_valid:
            return None
        state = found.trace_state.to_header() or None
        return TraceContext(
            f"{found.trace_id:032x}", f"{found.span_id:016x}", int(found.trace_flags), state
        )

    async def resumed(
        self, store: Store, waits: Sequence[tuple[int, int]], by: ResumedBy, since: int
    ) -> None:
        """For each wait that just ended: ``waitgate.resume`` (from ``since`` to now) and
        ``waitgate.wait`` (park to resume), children of the context the wait kept and linked
        to the current span (without a kept context: children of the current span)."""
        now = time.time_ns()
        here = trace.get_current_span().get_span_context()
        links = [Link(here)] if here.is_valid else []
        for found in await store.wait_traces(waits):
            parent = None if found.context is None else remote(found.context)
            attributes: dict[str, str | int] = {
                EXECUTION_ID: found.execution_id,
                WAIT_SEQ: found.seq,
                RESUMED_BY: found.resumed_by or by.value,
            }
            resume = self.tracer.start_span(
                "waitgate.resume",
                context=parent,
                links=links if parent is not None else (),
                start_time=since or now,
                attributes=attributes,
            )
            resume.end(now)
            if found.resumed_at is not None:
                wait = self.tracer.start_span(
                    "waitgate.wait",
                    context=parent,
                    start_time=found.parked_at * MS,
                    attributes=attributes,
                )
                wait.end(found.resumed_at * MS)

    async def timers_fired(self, store: Store, claimed: Sequence[TimedOut], since: int) -> None:
        """``waitgate.scheduler.claim`` (from ``since`` to now) and, linked to it, the spans
        of each wait it ended."""
        now = time.time_ns()
        claim = self.tracer.start_span(
            "waitgate.scheduler.claim",
            context=Context(),
            start_time=since or now,
            attributes={"waitgate.scheduler.claimed": len(claimed)},
        )
        with trace.use_span(claim, end_on_exit=False):
            keys = [(t.execution_id, t.seq) for t in claimed]
            await self.resumed(store, keys, ResumedBy.TIMEOUT, since)
        claim.end(now)

    @contextlib.contextmanager
    def delivery_attempt(self, delivery: Delivery) -> Iterator[_Attempt]:
        """``waitgate.delivery`` around one attempt, child of the context the delivery kept
        (a new trace without one)."""
        parent = Context() if delivery.trace is None else remote(delivery.trace)
        with self.tracer.start_as_current_span(
            "waitgate.delivery",
            context=parent,
            kind=SpanKind.CLIENT,
            attributes=_delivery_attributes(delivery),
            record_exception=False,
        ) as span:
            yield _Attempt(span)


def _delivery_attributes(delivery: Delivery) -> dict[str, str | int]:
    """What a delivery span says: the execution, delivery, event and attempt; for a callback,
    the method and the server (host and port only: a path or query may hold a token)."""
    attributes: dict[str, str | int] = {
        EXECUTION_ID: delivery.execution_id,
        "waitgate.delivery.id": delivery.id,
        "waitgate.delivery.event": delivery.event.value,
        "waitgate.delivery.attempt": delivery.attempts + 1,
    }
    if delivery.channel is not None:
        attributes["waitgate.delivery.channel"] = delivery.channel
        return attributes
    attributes["http.request.method"] = "POST"
    try:
        target = urlsplit(delivery.target_url)
        port = target.port
    except ValueError:
        return attributes
    if target.scheme:
        attributes["url.scheme"] = target.scheme
    if target.hostname:
        attributes["server.address"] = target.hostname
        attributes["server.port"] = port or (443 if target.scheme == "https" else 80)
    return attributes


def from_env(environ: Mapping[str, str], exporters: Set[str]) -> Tracing:
    """Tracing as the ``OTEL_*`` variables configure it: the resource (``OTEL_SERVICE_NAME``,
    default ``waitgate``; ``OTEL_RESOURCE_ATTRIBUTES``), the sampler (``OTEL_TRACES_SAMPLER``)
    and a batch processor per exporter (``otlp``: the OTLP exporter of
    ``OTEL_EXPORTER_OTLP_*``; ``console``). A tracer provider already installed (by
    ``opentelemetry-instrument``) is used as it is."""
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    installed = trace.get_tracer_provider()
    if isinstance(installed, TracerProvider):
        return Tracing(installed)
    resource = Resource.create({"service.version": __version__})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "waitgate"}))
    provider = TracerProvider(resource=resource)
    for name in sorted(exporters):
        provider.add_span_processor(BatchSpanProcessor(_exporter(name, environ)))
    trace.set_tracer_provider(provider)
    return Tracing(provider)


def _exporter(name: str, environ: Mapping[str, str]) -> SpanExporter:
    """The span exporter ``name`` (the OTLP one by ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL``)."""
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter  # noqa: PLC0415

    if name == "console":
        return ConsoleSpanExporter()
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    try:
        if protocol == "http/protobuf":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
                OTLPSpanExporter,
            )

            return OTLPSpanExporter()
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
                OTLPSpanExporter as GrpcSpanExporter,
            )

            grpc: SpanExporter = GrpcSpanExporter()
            return grpc
    except ImportError as exc:
        raise ConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol} needs a package that is not installed "
            f"({exc}); waitgate[otel] brings http/protobuf"
        ) from None
    raise ConfigError(
        f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not supported (http/protobuf or grpc)"
    )
