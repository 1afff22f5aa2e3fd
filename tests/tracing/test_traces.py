"""The trace follows an execution across its wait: park, resume (by URL, timer, API, after a
restart) and the callback form one trace, with the expected parent/child links."""

from __future__ import annotations

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gateway.clock import ManualClock
from gateway.config import Settings
from gateway.services import Services
from tests.conftest import create, fire_timers, running_gateway
from tests.receiver import Receiver
from tests.tracing.conftest import (
    ENGINE_SPAN,
    TRACE,
    TRACEPARENT,
    attrs,
    hex_span,
    hex_trace,
    named,
    one_span,
    parent_of,
)

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER = f"00-{CALLER_TRACE}-b7ad6b7169203331-01"
ENGINE = {"traceparent": TRACEPARENT, "tracestate": "engine=a1"}


async def park_traced(
    client: httpx.AsyncClient, eid: int, headers: dict[str, str], **fields: object
) -> dict[str, object]:
    response = await client.post(f"/api/v1/executions/{eid}/wait", json=fields, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_park_resume_by_url_and_callback_form_one_trace(
    exporter: InMemorySpanExporter,
    callback_settings: Settings,
    clock: ManualClock,
    receiver: Receiver,
) -> None:
    async with running_gateway(callback_settings, clock) as (_, client):
        eid = (await create(client, callbackUrl=receiver.url))["id"]
        parked = await park_traced(client, eid, ENGINE, webhook={"httpMethod": "POST"})
        clock.advance(5_000)
        resumed = await client.post(
            str(parked["resumeUrl"]), json={"ok": 1}, headers={"traceparent": CALLER}
        )
        assert resumed.status_code == 200
        await receiver.wait_for(1)
        delivery = await one_span(exporter, "waitgate.delivery")

    park_http = await one_span(exporter, "POST /api/v1/executions/{id}/wait")
    park = await one_span(exporter, "waitgate.park")
    wait = await one_span(exporter, "waitgate.wait")
    resume = await one_span(exporter, "waitgate.resume")
    resume_http = await one_span(exporter, "POST /webhook-waiting/{id}")
    # The engine's trace: its span -> the park request -> park -> {wait, resume, delivery}.
    for span in (park_http, park, wait, resume, delivery):
        assert hex_trace(span) == TRACE, span.name
    assert park_http.parent is not None
    assert park_http.parent.is_remote
    assert parent_of(park_http) == ENGINE_SPAN
    assert park_http.kind is SpanKind.SERVER
    assert parent_of(park) == hex_span(park_http)
    assert parent_of(wait) == parent_of(resume) == parent_of(delivery) == hex_span(park)
    # The caller of the resume URL has its own trace; the resume is linked to its request.
    assert hex_trace(resume_http) == CALLER_TRACE
    assert [hex_span_of(link) for link in resume.links] == [hex_span(resume_http)]
    # The wait spans the store's instants, park to resume.
    assert wait.start_time is not None
    assert wait.end_time is not None
    assert wait.end_time - wait.start_time == 5_000 * 1_000_000
    for span in (wait, resume):
        assert span.attributes is not None
        assert span.attributes["waitgate.execution.id"] == eid
        assert span.attributes["waitgate.wait.seq"] == 1
        assert span.attributes["waitgate.wait.resumed_by"] == "webhook"
    assert park.attributes is not None
    assert park.attributes["waitgate.wait.seq"] == 1
    # The callback carries the delivery span's context, and the engine's tracestate.
    got = receiver.received[0].headers
    assert got["traceparent"] == f"00-{TRACE}-{hex_span(delivery)}-01"
    assert got["tracestate"] == "engine=a1"
    assert delivery.kind is SpanKind.CLIENT
    assert delivery.attributes is not None
    assert delivery.attributes["http.response.status_code"] == 200
    assert delivery.attributes["server.address"] == "127.0.0.1"
    assert delivery.attributes["waitgate.delivery.id"] == got["webhook-id"]
    assert park_http.attributes is not None
    assert park_http.attributes["http.route"] == "/api/v1/executions/{id}/wait"
    assert park_http.attributes["http.response.status_code"] == 200
    assert park_http.attributes["http.request.method"] == "POST"


def hex_span_of(link: object) -> str:
    context = getattr(link, "context", None)
    assert context is not None
    return f"{context.span_id:016x}"


async def test_a_timer_resume_continues_the_trace_from_the_scheduler(
    exporter: InMemorySpanExporter,
    callback_settings: Settings,
    clock: ManualClock,
    receiver: Receiver,
) -> None:
    async with running_gateway(callback_settings, clock) as (app, client):
        svc: Services = app.state.services
        eid = (await create(client, callbackUrl=receiver.url))["id"]
        await park_traced(client, eid, ENGINE, waitTill="2026-01-01T00:01:00Z")
        clock.advance(61_000)
        await fire_timers(svc, eid)
        await receiver.wait_for(1)
        delivery = await one_span(exporter, "waitgate.delivery")

    park = await one_span(exporter, "waitgate.park")
    wait = await one_span(exporter, "waitgate.wait")
    resume = await one_span(exporter, "waitgate.resume")
    (claim,) = named(exporter, "waitgate.scheduler.claim")
    assert claim.parent is None  # the scheduler's own trace
    assert claim.attributes is not None
    assert claim.attributes["waitgate.scheduler.claimed"] == 1
    assert [hex_span_of(link) for link in resume.links] == [hex_span(claim)]
    for span in (park, wait, resume, delivery):
        assert hex_trace(span) == TRACE, span.name
    assert parent_of(wait) == parent_of(resume) == parent_of(delivery) == hex_span(park)
    assert resume.attributes is not None
    assert resume.attributes["waitgate.wait.resumed_by"] == "timeout"
    assert wait.start_time is not None
    assert wait.end_time is not None
    assert wait.end_time - wait.start_time == 61_000 * 1_000_000
    assert receiver.received[0].headers["traceparent"].startswith(f"00-{TRACE}-")


async def test_the_trace_survives_restarts_and_a_retried_callback(
    exporter: InMemorySpanExporter,
    callback_settings: Settings,
    clock: ManualClock,
    receiver: Receiver,
) -> None:
    receiver.answers = [500]
    async with running_gateway(callback_settings, clock) as (_, client):
        eid = (await create(client, callbackUrl=receiver.url))["id"]
        await park_traced(client, eid, ENGINE, webhook={})
    park = await one_span(exporter, "waitgate.park")

    async with running_gateway(callback_settings, clock) as (_, client):  # another process
        answer = await client.post(f"/api/v1/executions/{eid}/resume", json={"data": {"by": "api"}})
        assert answer.status_code == 200
        await receiver.wait_for(1)
        first = await one_span(exporter, "waitgate.delivery")

    async with running_gateway(callback_settings, clock):  # the retry, after a restart
        clock.advance(30_000)
        await receiver.wait_for(2)
        second = await one_span(exporter, "waitgate.delivery", count=2)

    resume = await one_span(exporter, "waitgate.resume")
    assert resume.attributes is not None
    assert resume.attributes["waitgate.wait.resumed_by"] == "api"
    for span in (resume, first, second):
        assert hex_trace(span) == TRACE, span.name
        assert parent_of(span) == hex_span(park)
    assert first.attributes is not None
    assert second.attributes is not None
    assert first.attributes["http.response.status_code"] == 500
    assert (
        first.attributes["waitgate.delivery.attempt"],
        second.attributes["waitgate.delivery.attempt"],
    ) == (1, 2)
    assert first.status.status_code.name == "ERROR"
    sent = [r.headers["traceparent"] for r in receiver.received]
    assert sent == [f"00-{TRACE}-{hex_span(first)}-01", f"00-{TRACE}-{hex_span(second)}-01"]
    assert {r.headers["tracestate"] for r in receiver.received} == {"engine=a1"}


async def test_a_context_given_at_create_is_continued_by_a_park_without_one(
    exporter: InMemorySpanExporter,
    callback_settings: Settings,
    clock: ManualClock,
    receiver: Receiver,
) -> None:
    async with running_gateway(callback_settings, clock) as (_, client):
        created = await client.post(
            "/api/v1/executions",
            json={"workflowId": "wf-1", "callbackUrl": receiver.url},
            headers={"traceparent": TRACEPARENT},
        )
        eid = created.json()["id"]
        await park_traced(client, eid, {}, webhook={})
        await client.post(f"/api/v1/executions/{eid}/resume", json={})
        await receiver.wait_for(1)
        delivery = await one_span(exporter, "waitgate.delivery")

    create_span = await one_span(exporter, "waitgate.create")
    park = await one_span(exporter, "waitgate.park")
    resume = await one_span(exporter, "waitgate.resume")
    assert hex_trace(create_span) == TRACE
    assert hex_trace(park) != TRACE  # a park request without a context: its own trace
    for span in (resume, delivery):
        assert hex_trace(span) == TRACE
        assert parent_of(span) == hex_span(create_span)


async def test_event_and_approval_resumes_continue_each_wait_s_trace(
    exporter: InMemorySpanExporter,
    callback_settings: Settings,
    clock: ManualClock,
    receiver: Receiver,
) -> None:
    other_trace = "a" * 31 + "b"
    async with running_gateway(callback_settings, clock) as (_, client):
        source = {"name": "orders", "verify": {"type": "none", "allowedIps": ["10.0.0.0/8"]}}
        assert (await client.post("/api/v1/event-sources", json=source)).status_code == 201
        by_event = (await create(client, callbackUrl=receiver.url))["id"]
        events = [{"source": "orders", "name": "shipped", "match": {"order.id": "42"}}]
        await park_traced(client, by_event, ENGINE, events=events)
        by_approval = (await create(client, callbackUrl=receiver.url))["id"]
        approval = {"title": "Deploy?", "approvers": [{"id": "ada"}]}
        headers = {"traceparent": f"00-{other_trace}-{ENGINE_SPAN}-01"}
        await park_traced(client, by_approval, headers, approval=approval)

        event = {"source": "orders", "name": "shipped", "data": {"order": {"id": 42}}}
        published = await client.post("/api/v1/events", json=event)
        assert published.json()["matched"] == 1
        decided = await client.post(
            f"/api/v1/executions/{by_approval}/decisions",
            json={"approver": "ada", "decision": "approve"},
        )
        assert decided.status_code == 201, decided.text
        await receiver.wait_for(2)
        await one_span(exporter, "waitgate.delivery", count=2)

    parks = {attrs(s)["waitgate.execution.id"]: s for s in named(exporter, "waitgate.park")}
    resumes = named(exporter, "waitgate.resume")
    waits = named(exporter, "waitgate.wait")
    for eid, trace_id, by in ((by_event, TRACE, "event"), (by_approval, other_trace, "approval")):
        park = parks[eid]
        for found in (resumes, waits):
            (span,) = [s for s in found if attrs(s)["waitgate.execution.id"] == eid]
            assert hex_trace(span) == trace_id
            assert parent_of(span) == hex_span(park)
            assert attrs(span)["waitgate.wait.resumed_by"] == by
        (delivery,) = [
            s
            for s in named(exporter, "waitgate.delivery")
            if attrs(s)["waitgate.execution.id"] == eid
        ]
        assert parent_of(delivery) == hex_span(park)
    publish = await one_span(exporter, "POST /api/v1/events")
    (event_resume,) = [s for s in resumes if attrs(s)["waitgate.execution.id"] == by_event]
    assert [hex_span_of(link) for link in event_resume.links] == [hex_span(publish)]


async def test_a_created_parked_wait_continues_the_create_s_trace(
    exporter: InMemorySpanExporter,
    callback_settings: Settings,
    clock: ManualClock,
    receiver: Receiver,
) -> None:
    """``POST /api/v1/executions`` with ``wait``: one request span, one ``waitgate.create``
    (naming the execution and its wait), and the wait, its resume and the callback under it."""
    async with running_gateway(callback_settings, clock) as (_, client):
        body = {"workflowId": "wf-1", "callbackUrl": receiver.url, "wait": {"webhook": {}}}
        made = await client.post("/api/v1/executions", json=body, headers=ENGINE)
        assert made.status_code == 201, made.text
        clock.advance(2_000)
        assert (await client.get(made.json()["resumeUrl"])).status_code == 200
        await receiver.wait_for(1)
        delivery = await one_span(exporter, "waitgate.delivery")

    request = await one_span(exporter, "POST /api/v1/executions")
    create = await one_span(exporter, "waitgate.create")
    wait = await one_span(exporter, "waitgate.wait")
    resume = await one_span(exporter, "waitgate.resume")
    assert [s.name for s in exporter.get_finished_spans()].count("waitgate.park") == 0
    for span in (request, create, wait, resume, delivery):
        assert hex_trace(span) == TRACE, span.name
    assert parent_of(request) == ENGINE_SPAN
    assert parent_of(create) == hex_span(request)
    assert parent_of(wait) == parent_of(resume) == parent_of(delivery) == hex_span(create)
    assert attrs(create) == {"waitgate.execution.id": made.json()["id"], "waitgate.wait.seq": 1}
    assert wait.end_time is not None
    assert wait.start_time is not None
    assert wait.end_time - wait.start_time == 2_000 * 1_000_000
    got = receiver.received[0].headers
    assert got["traceparent"] == f"00-{TRACE}-{hex_span(delivery)}-01"
    assert got["tracestate"] == "engine=a1"
