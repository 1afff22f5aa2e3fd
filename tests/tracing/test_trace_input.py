"""What callers send is read strictly: a malformed context is ignored and never kept, an
oversized tracestate is dropped, no signature or secret reaches a span, and with tracing off a
valid context passes through to the callback as given."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway import tracing
from gateway.clock import ManualClock
from gateway.config import Settings
from gateway.services import Services
from gateway.trace_context import stored
from persistence.script import Script, Statement, Want
from tests.conftest import BASE_URL, create, running_gateway
from tests.receiver import Receiver
from tests.tracing.conftest import ENGINE_SPAN, TRACE, TRACEPARENT, named, one_span, parent_of

MALFORMED = [
    "garbage",
    TRACEPARENT.upper(),
    f"00-{'0' * 32}-{ENGINE_SPAN}-01",
    f"{TRACEPARENT}-extra",
    f"ff-{TRACE}-{ENGINE_SPAN}-01",
    "00-" + "e" * 4000,
]
OVERSIZED_STATE = ",".join(f"k{i}={'v' * 40}" for i in range(20))


def raw_contexts() -> Script[list[tuple[Any, Any]]]:
    """Every trace context column as stored, of every table that keeps one."""
    sql = " UNION ALL ".join(
        f"SELECT trace_parent, trace_state FROM {table}"
        for table in ("executions", "waits", "deliveries")
    )
    found = yield Statement("raw_contexts", {}, Want.ROWS, text=lambda _: sql)
    return [(r["trace_parent"], r["trace_state"]) for r in found]


async def test_a_malformed_context_is_ignored_and_never_kept(
    exporter: InMemorySpanExporter,
    callback_settings: Settings,
    clock: ManualClock,
    receiver: Receiver,
) -> None:
    async with running_gateway(callback_settings, clock) as (app, client):
        svc: Services = app.state.services
        for value in MALFORMED:
            eid = (await create(client))["id"]
            answer = await client.post(
                f"/api/v1/executions/{eid}/wait",
                json={"webhook": {}},
                headers={"traceparent": value, "tracestate": "engine=a1"},
            )
            assert answer.status_code == 200, value  # ignored, not refused
        big = (await create(client, callbackUrl=receiver.url))["id"]
        headers = {"traceparent": TRACEPARENT, "tracestate": OVERSIZED_STATE}
        answer = await client.post(
            f"/api/v1/executions/{big}/wait", json={"webhook": {}}, headers=headers
        )
        assert answer.status_code == 200
        await client.post(f"/api/v1/executions/{big}/resume", json={})
        await receiver.wait_for(1)
        raw = await svc.store.db.read(raw_contexts())
        (kept,) = await svc.store.wait_traces([(big, 1)])

    for parent, state in raw:  # only canonical, valid values were written
        if parent is not None:
            context = stored(parent, state)
            assert context is not None
            assert (context.traceparent, context.state) == (parent, state)
        assert state is None or len(state) <= 512
    written = json.dumps(raw)
    for value in MALFORMED:
        assert value not in written
    assert OVERSIZED_STATE not in written
    assert kept.context is not None
    assert (kept.context.trace_id, kept.context.state) == (TRACE, None)  # the park span's
    got = receiver.received[0].headers
    assert got["traceparent"].startswith(f"00-{TRACE}-")
    assert "tracestate" not in got
    parks = named(exporter, "POST /api/v1/executions/{id}/wait")
    assert [parent_of(s) for s in parks] == [None] * len(MALFORMED) + [ENGINE_SPAN]


def span_texts(exporter: InMemorySpanExporter) -> Iterator[str]:
    """Every name, attribute key and value, event, link, status text and resource value of
    every span."""
    for span in exporter.get_finished_spans():
        yield span.name
        yield span.status.description or ""
        yield from (f"{k}={v!r}" for k, v in (span.attributes or {}).items())
        yield from (f"{k}={v!r}" for k, v in span.resource.attributes.items())
        for event in span.events:
            yield event.name
            yield from (f"{k}={v!r}" for k, v in (event.attributes or {}).items())
        for link in span.links:
            yield from (f"{k}={v!r}" for k, v in (link.attributes or {}).items())


async def test_no_signature_or_secret_reaches_a_span(
    exporter: InMemorySpanExporter,
    callback_settings: Settings,
    clock: ManualClock,
    receiver: Receiver,
) -> None:
    callback = f"{receiver.url}?token=callback-token-0001"
    async with running_gateway(callback_settings, clock) as (app, client):
        svc: Services = app.state.services
        api_key = client.headers["X-N8N-API-KEY"]
        eid = (await create(client, callbackUrl=callback))["id"]
        answer = await client.post(
            f"/api/v1/executions/{eid}/wait",
            json={"webhook": {"httpMethod": "POST"}},
            headers={"traceparent": TRACEPARENT},
        )
        url = answer.json()["resumeUrl"]
        signature = parse_qs(urlsplit(url).query)["signature"][0]
        forged = url.replace(signature, signature[:-6] + "AAAAAA")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as anon:
            secret_headers = {
                "authorization": "Bearer bearer-secret-0002",
                "cookie": "session=cookie-secret-0003",
                "x-n8n-api-key": "key-secret-0004",
            }
            assert (await anon.post(forged, json={}, headers=secret_headers)).status_code == 401
            assert (await anon.get(f"{url}&token=query-secret-0005")).status_code < 500
            resumed = await anon.post(
                url, json={"password": "body-secret-0006"}, headers=secret_headers
            )
            assert resumed.status_code == 200
            replayed = await anon.post(url, json={}, headers=secret_headers)
            assert replayed.status_code == 409
        await receiver.wait_for(1)
        await one_span(exporter, "waitgate.delivery")
        assert svc.settings.callback_secret is not None
        secrets = [
            signature,
            signature[:-6] + "AAAAAA",
            api_key,
            svc.settings.callback_secret.reveal(),
            *(key.reveal() for key in svc.settings.secret_keys),
            receiver.received[0].headers["webhook-signature"],
            "callback-token-0001",
            "bearer-secret-0002",
            "cookie-secret-0003",
            "key-secret-0004",
            "query-secret-0005",
            "body-secret-0006",
        ]

    texts = "\n".join(span_texts(exporter))
    assert "waitgate.wait" in texts  # the spans are there
    for secret in secrets:
        assert secret not in texts
        assert secret.split(",")[-1] not in texts  # a signature without its "v1," prefix
    names = {s.name for s in exporter.get_finished_spans()}
    assert "POST /webhook-waiting/{id}" in names
    assert not [name for name in names if "?" in name or re.search(r"/\d+(/|$)", name)]


async def test_without_tracing_a_given_context_passes_through(
    callback_settings: Settings, clock: ManualClock, receiver: Receiver
) -> None:
    assert tracing.active() is None
    from_create = "00-11111111111111111111111111111111-2222222222222222-00"
    async with running_gateway(callback_settings, clock) as (_, client):
        at_park = (await create(client, callbackUrl=receiver.url))["id"]
        await client.post(
            f"/api/v1/executions/{at_park}/wait",
            json={"webhook": {}},
            headers={"traceparent": TRACEPARENT, "tracestate": "engine=a1,other=b"},
        )
        created = await client.post(
            "/api/v1/executions",
            json={"workflowId": "wf", "callbackUrl": receiver.url},
            headers={"traceparent": from_create},
        )
        at_create = created.json()["id"]
        await client.post(f"/api/v1/executions/{at_create}/wait", json={"webhook": {}})
        bad = (await create(client, callbackUrl=receiver.url))["id"]
        await client.post(
            f"/api/v1/executions/{bad}/wait",
            json={"webhook": {}},
            headers={"traceparent": "garbage"},
        )
        for eid in (at_park, at_create, bad):
            await client.post(f"/api/v1/executions/{eid}/resume", json={})
        await receiver.wait_for(3)
        # the next wait, parked without a context, and the cancel continue the latest one
        await client.post(f"/api/v1/executions/{at_park}/wait", json={"webhook": {}})
        await client.post(f"/api/v1/executions/{at_park}/resume", json={})
        await receiver.wait_for(4)
        await client.post(f"/api/v1/executions/{at_park}/stop")
        await receiver.wait_for(5)

    later = [r.headers for r in receiver.received[3:]]
    assert [h["traceparent"] for h in later] == [TRACEPARENT, TRACEPARENT]
    assert json.loads(receiver.received[4].body)["type"] == "execution.canceled"
    by_execution = {
        json.loads(r.body)["data"]["executionId"]: r.headers for r in receiver.received[:3]
    }
    assert by_execution[at_park]["traceparent"] == TRACEPARENT
    assert by_execution[at_park]["tracestate"] == "engine=a1,other=b"
    assert by_execution[at_create]["traceparent"] == from_create
    assert "tracestate" not in by_execution[at_create]
    assert "traceparent" not in by_execution[bad]
