"""Tracing is off and free unless asked for: no middleware, no OpenTelemetry import; the
standard ``OTEL_*`` variables turn it on, and spans reach a real OTLP/HTTP collector."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from starlette.middleware import Middleware

from gateway import tracing
from gateway.app import GatewayApp, create_app
from gateway.clock import ManualClock
from gateway.config import Settings
from gateway.errors import ConfigError
from gateway.otel import Tracing
from tests.receiver import running_receiver
from tests.tracing.conftest import TRACE, TRACEPARENT

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import asyncio, json, sys, tempfile
from pathlib import Path

if sys.argv[1] == "blocked":
    sys.modules["opentelemetry"] = None  # import opentelemetry fails, as when not installed

import httpx
from gateway import tracing
from gateway.app import create_app
from gateway.auth import generate_key, hash_key
from gateway.config import Secret, Settings

on = tracing.configure_from_env()
data = Path(tempfile.mkdtemp())
settings = Settings(
    database_url=f"sqlite:///{data / 'waitgate.db'}",
    public_url="http://127.0.0.1:5678",
    secret_keys=(Secret("test-secret-key-of-at-least-32-characters"),),
    data_dir=data,
    align_clock_to_database=False,
)
app = create_app(settings)
statuses = []

async def main():
    async with app.router.lifespan_context(app):
        key = generate_key()
        store = app.state.services.store
        await store.create_api_key("t", hash_key(key), key[:10], ("admin",), None, 0)
        transport = httpx.ASGITransport(app=app)
        headers = {"X-N8N-API-KEY": key, "traceparent": sys.argv[2]}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1:5678", headers=headers
        ) as client:
            statuses.append((await client.get("/healthz")).status_code)
            created = await client.post("/api/v1/executions", json={"workflowId": "wf"})
            eid = created.json()["id"]
            parked = await client.post(f"/api/v1/executions/{eid}/wait", json={"webhook": {}})
            resumed = await client.post(f"/api/v1/executions/{eid}/resume", json={})
            statuses.extend([created.status_code, parked.status_code, resumed.status_code])

asyncio.run(main())
loaded = sorted(m for m, v in sys.modules.items() if m.startswith("opentelemetry") and v)
middleware = [m.cls.__name__ for m in [*app.front, *app.user_middleware]]
print(json.dumps({"on": on, "statuses": statuses, "loaded": loaded, "middleware": middleware}))
"""


async def run_gateway(mode: str, env: Mapping[str, str]) -> tuple[dict[str, object], str]:
    """Run ``SCRIPT`` in a fresh interpreter; what it printed last, and its stderr."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SCRIPT,
        mode,
        TRACEPARENT,
        cwd=ROOT,
        env={**clean, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    last = out.decode().strip().splitlines()[-1]
    found: dict[str, object] = json.loads(last)
    return found, err.decode()


def test_tracing_off_adds_no_middleware_and_on_adds_exactly_one(
    settings: Settings, clock: ManualClock
) -> None:
    assert tracing.active() is None
    assert tracing.middleware() == []
    off = declared(create_app(settings, clock=clock))
    tracing.use(Tracing(TracerProvider()))
    try:
        on = declared(create_app(settings, clock=clock))
    finally:
        tracing.use(None)
    assert "HttpSpans" not in off
    assert on.count("HttpSpans") == 1
    assert [name for name in on if name != "HttpSpans"] == off


def declared(app: GatewayApp) -> list[str]:
    """The names of the app's middlewares, its front first."""
    return [middleware_name(m) for m in [*app.front, *app.user_middleware]]


def middleware_name(middleware: Middleware) -> str:
    name: str = getattr(middleware.cls, "__qualname__", repr(middleware.cls))
    return name


@pytest.mark.parametrize("mode", ["installed", "blocked"])
async def test_the_core_serves_without_importing_opentelemetry(mode: str) -> None:
    """Installed but not configured, or configured but not importable: the gateway serves a
    whole wait with a ``traceparent`` and OpenTelemetry is never imported."""
    env = {} if mode == "installed" else {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    found, err = await run_gateway(mode, env)
    assert found["on"] is False
    assert found["statuses"] == [200, 201, 200, 200]
    assert found["loaded"] == []
    assert "HttpSpans" not in str(found["middleware"])
    if mode == "blocked":
        assert "install waitgate[otel]" in err


async def test_otel_variables_send_spans_to_an_otlp_collector() -> None:
    async with running_receiver() as collector:
        env = {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.url,
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test",
        }
        found, _ = await run_gateway("installed", env)
        await collector.wait_for(1)
    assert found["on"] is True
    assert found["statuses"] == [200, 201, 200, 200]
    assert "HttpSpans" in str(found["middleware"])
    request = ExportTraceServiceRequest()
    for received in collector.received:
        assert received.headers["content-type"] == "application/x-protobuf"
        part = ExportTraceServiceRequest()
        part.ParseFromString(received.body)
        request.resource_spans.extend(part.resource_spans)
    resource = {a.key: a.value.string_value for a in request.resource_spans[0].resource.attributes}
    assert resource["service.name"] == "waitgate"
    assert resource["deployment.environment"] == "test"
    spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    names = {s.name for s in spans}
    assert {"GET /healthz", "waitgate.park", "waitgate.wait", "waitgate.resume"} <= names
    wait = next(s for s in spans if s.name == "waitgate.wait")
    assert wait.trace_id.hex() == TRACE


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
        ({"OTEL_SDK_DISABLED": "TRUE", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, False),
        ({"OTEL_SERVICE_NAME": "gate"}, False),
    ],
)
def test_which_variables_turn_tracing_on(env: dict[str, str], wanted: bool) -> None:
    assert tracing.wanted(env) is wanted


def test_an_unknown_exporter_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="zipkin"):
        tracing.configure_from_env({"OTEL_TRACES_EXPORTER": "otlp,zipkin"})
    assert tracing.active() is None
