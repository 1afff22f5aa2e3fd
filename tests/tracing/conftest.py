"""Tracing on, with the SDK's in-memory exporter, and a callback receiver."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway import tracing
from gateway.config import Settings
from gateway.origins import origin_of
from gateway.otel import Tracing
from tests.receiver import Receiver

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
ENGINE_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{ENGINE_SPAN}-01"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """Tracing on (for apps created from now on), every finished span kept in memory."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracing.use(Tracing(provider))
    yield memory
    tracing.use(None)
    provider.shutdown()


@pytest.fixture
def callback_settings(settings: Settings, receiver: Receiver) -> Settings:
    return dataclasses.replace(
        settings,
        callback_allowed_origins=(origin_of(receiver.url),),
        callback_backoff_base_seconds=1.0,
        callback_max_age_seconds=60.0,
    )


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    """The finished spans called ``name``."""
    return [s for s in exporter.get_finished_spans() if s.name == name]


async def one_span(exporter: InMemorySpanExporter, name: str, count: int = 1) -> ReadableSpan:
    """The last of ``count`` spans called ``name``, once they have ended (bounded wait)."""
    for _ in range(250):
        found = named(exporter, name)
        if len(found) >= count:
            return found[count - 1]
        await asyncio.sleep(0.02)
    raise AssertionError(
        f"no span {name!r} ended: {[s.name for s in exporter.get_finished_spans()]}"
    )


def hex_trace(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.trace_id:032x}"


def hex_span(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.span_id:016x}"


def parent_of(span: ReadableSpan) -> str | None:
    return None if span.parent is None else f"{span.parent.span_id:016x}"


def attrs(span: ReadableSpan) -> Mapping[str, Any]:
    """The span's attributes (none: empty)."""
    return span.attributes or {}
