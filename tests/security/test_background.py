"""Background work that dies silently, and callbacks checked by host only (issue 11).

Every background loop runs under one supervisor: a failing iteration is logged, counted and
backed off, and the loop carries on; a loop that ends makes ``/readyz`` fail. Callback targets
are allowed by whole origin (scheme, host, port), re-checked at send time, and only a short
prefix of a failed answer is read and kept.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from starlette.applications import Starlette

from gateway.audit import AuditTrail
from gateway.clock import ManualClock
from gateway.config import Settings
from gateway.domain import NewExecution, ResumeAttempt, Status
from gateway.errors import StoreUnavailable
from gateway.services import Services
from persistence.base import Store
from tests.conftest import create, park, running_gateway
from tests.receiver import Receiver

TASKS = ("scheduler", "dispatcher", "audit", "pruner", "clock")


def origin(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}"


@pytest.fixture
def bg_settings(settings: Settings, receiver: Receiver) -> Settings:
    return dataclasses.replace(settings, callback_allowed_origins=(origin(receiver.url),))


@pytest.fixture
async def gateway(
    bg_settings: Settings, clock: ManualClock
) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    async with running_gateway(bg_settings, clock) as (app, client):
        yield app, client


@pytest.fixture
async def aligned_gateway(
    bg_settings: Settings, clock: ManualClock
) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """A gateway that also runs the clock alignment loop."""
    aligned = dataclasses.replace(bg_settings, align_clock_to_database=True)
    async with running_gateway(aligned, clock) as (app, client):
        yield app, client


def errors_counted(task: str) -> float:
    return REGISTRY.get_sample_value("waitgate_background_errors_total", {"task": task}) or 0.0


def failing_first(times: int, verb: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """``verb``, except that its first ``times`` calls raise ``StoreUnavailable``."""
    calls = 0

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls <= times:
            raise StoreUnavailable(f"injected failure {calls}")
        return await verb(*args, **kwargs)

    return flaky


async def until(check: Callable[[], Awaitable[bool]], clock: ManualClock, step_ms: int) -> None:
    """Move the manual clock ``step_ms`` at a time (past any backoff) until ``check`` holds."""
    for _ in range(200):
        if await check():
            return
        clock.advance(step_ms)
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


async def assert_survived(app: Starlette, client: httpx.AsyncClient, task: str) -> None:
    svc: Services = app.state.services
    assert not svc.supervisor.tasks[f"waitgate-{task}"].done()
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text


async def delivery_errors(client: httpx.AsyncClient, eid: int) -> list[str | None]:
    found = (await client.get(f"/api/v1/executions/{eid}/deliveries")).json()["data"]
    return [a["error"] for d in found for a in d["attempts"]]


async def resume_with_callback(
    client: httpx.AsyncClient, svc: Services, callback_url: str, *, direct: bool = False
) -> int:
    """An execution with this callback URL, parked and resumed: one delivery in the outbox.

    ``direct`` writes the execution through the store, as rows written before the allow-list
    was checked at create time (or by an older version) are.
    """
    if direct:
        new = NewExecution("wf", callback_url=callback_url)
        eid = (await svc.store.create_execution(new, svc.clock.now_ms())).id
    else:
        eid = (await create(client, callbackUrl=callback_url))["id"]
    await park(client, eid, webhook={})
    resumed = await client.post(f"/api/v1/executions/{eid}/resume", json={})
    assert resumed.status_code == 200, resumed.text
    return eid


# --- the dispatcher survives every send error ---------------------------------------------


async def test_an_out_of_range_port_is_a_failed_attempt_and_the_dispatcher_lives_on(
    gateway: tuple[Starlette, httpx.AsyncClient], receiver: Receiver, clock: ManualClock
) -> None:
    app, client = gateway
    svc: Services = app.state.services
    host = origin(receiver.url).rsplit(":", 1)[0]
    bad = await resume_with_callback(client, svc, f"{host}:99999/", direct=True)

    async def attempted() -> bool:
        return len(await delivery_errors(client, bad)) > 0

    await until(attempted, clock, 100)
    (error,) = await delivery_errors(client, bad)
    assert error is not None
    assert "99999" in error or "port" in error.lower()
    good = await resume_with_callback(client, svc, receiver.url)
    await until(lambda: _received(receiver, 1), clock, 100)
    assert b'"executionId":%d' % good in receiver.received[0].body
    await assert_survived(app, client, "dispatcher")


async def test_any_exception_while_sending_is_a_failed_attempt(
    gateway: tuple[Starlette, httpx.AsyncClient],
    receiver: Receiver,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, client = gateway
    svc: Services = app.state.services
    send = httpx.AsyncClient.send

    async def exploding(self: httpx.AsyncClient, request: httpx.Request, **kw: Any) -> Any:
        if request.url.path == "/boom":
            raise RuntimeError("kaboom")
        return await send(self, request, **kw)

    monkeypatch.setattr(httpx.AsyncClient, "send", exploding)
    bad = await resume_with_callback(client, svc, origin(receiver.url) + "/boom")

    async def attempted() -> bool:
        return len(await delivery_errors(client, bad)) > 0

    await until(attempted, clock, 100)
    assert await delivery_errors(client, bad) == ["RuntimeError: kaboom"]
    await resume_with_callback(client, svc, receiver.url)
    await until(lambda: _received(receiver, 1), clock, 100)
    await assert_survived(app, client, "dispatcher")


async def _received(receiver: Receiver, count: int) -> bool:
    return len(receiver.received) >= count


# --- every loop survives a failing iteration ----------------------------------------------


async def test_scheduler_survives_failures(
    gateway: tuple[Starlette, httpx.AsyncClient],
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = gateway
    svc: Services = app.state.services
    before = errors_counted("scheduler")
    monkeypatch.setattr(svc.store, "claim_due", failing_first(2, svc.store.claim_due))
    eid = (await create(client))["id"]
    await park(client, eid, waitTill="2026-01-01T00:00:01Z")

    async def resumed() -> bool:
        execution = await svc.store.get_execution(eid)
        return execution is not None and execution.status is Status.RUNNING

    await until(resumed, clock, 1000)
    assert errors_counted("scheduler") - before == 2
    assert_logged(caplog, "scheduler")
    await assert_survived(app, client, "scheduler")


async def test_dispatcher_survives_failures(
    gateway: tuple[Starlette, httpx.AsyncClient],
    receiver: Receiver,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = gateway
    svc: Services = app.state.services
    before = errors_counted("dispatcher")
    monkeypatch.setattr(svc.store, "claim_deliveries", failing_first(2, svc.store.claim_deliveries))
    await resume_with_callback(client, svc, receiver.url)
    await until(lambda: _received(receiver, 1), clock, 1000)
    assert errors_counted("dispatcher") - before == 2
    assert_logged(caplog, "dispatcher")
    await assert_survived(app, client, "dispatcher")


async def test_audit_flush_survives_failures(
    gateway: tuple[Starlette, httpx.AsyncClient],
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = gateway
    svc: Services = app.state.services
    before = errors_counted("audit")
    monkeypatch.setattr(
        svc.store, "record_resume_attempts", failing_first(2, svc.store.record_resume_attempts)
    )
    eid = (await create(client))["id"]
    parked = await park(client, eid, webhook={"httpMethod": "POST"})
    assert (await client.post(parked["resumeUrl"], json={})).status_code == 200

    async def audited() -> bool:  # read from the store: the route would flush on its own
        return len(await svc.store.resume_attempts(eid)) == 1

    await until(audited, clock, 1000)
    assert errors_counted("audit") - before == 2
    assert_logged(caplog, "audit")
    await assert_survived(app, client, "audit")


async def test_pruner_survives_failures(
    gateway: tuple[Starlette, httpx.AsyncClient],
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = gateway
    svc: Services = app.state.services
    before = errors_counted("pruner")
    monkeypatch.setattr(svc.store, "prune", failing_first(2, svc.store.prune))
    eid = (await create(client))["id"]
    await client.post(f"/api/v1/executions/{eid}/finish", json={"status": "success"})
    clock.advance(337 * 3600 * 1000)  # past the 336 h retention

    async def pruned() -> bool:
        return await svc.store.get_execution(eid) is None

    await until(pruned, clock, 300_000)
    assert errors_counted("pruner") - before >= 2
    assert_logged(caplog, "pruner")
    await assert_survived(app, client, "pruner")


async def test_clock_alignment_survives_failures(
    aligned_gateway: tuple[Starlette, httpx.AsyncClient],
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = aligned_gateway
    svc: Services = app.state.services
    before = errors_counted("clock")

    async def database_time() -> int:
        return clock.now_ms() + 5000

    monkeypatch.setattr(svc.store, "database_time", failing_first(2, database_time))

    async def aligned() -> bool:
        return getattr(svc.clock, "offset_ms", None) == 5000

    await until(aligned, clock, 60_000)
    assert errors_counted("clock") - before == 2
    assert_logged(caplog, "clock")
    await assert_survived(app, client, "clock")


def assert_logged(caplog: pytest.LogCaptureFixture, task: str) -> None:
    failures = [
        r
        for r in caplog.records
        if getattr(r, "action", None) == "background.error" and getattr(r, "task", None) == task
    ]
    assert len(failures) >= 2
    assert "injected failure 1" in failures[0].getMessage()
    assert getattr(failures[1], "retry_in_ms", 0) > getattr(failures[0], "retry_in_ms", 0)


# --- a loop that ends fails /readyz -------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
async def test_a_loop_that_ends_makes_readyz_fail(
    aligned_gateway: tuple[Starlette, httpx.AsyncClient],
    task: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = aligned_gateway
    svc: Services = app.state.services
    assert (await client.get("/readyz")).status_code == 200
    victim = svc.supervisor.tasks[f"waitgate-{task}"]
    victim.cancel()
    await asyncio.gather(victim, return_exceptions=True)
    response = await client.get("/readyz")
    assert response.status_code == 503
    reason = f"background task stopped: waitgate-{task}"
    assert response.json() == {
        "message": reason,
        "code": 503,
        "status": "unavailable",
        "reason": reason,
    }
    died = [r for r in caplog.records if getattr(r, "action", None) == "background.died"]
    assert died
    assert died[0].levelno == logging.ERROR


# --- the audit buffer stays bounded --------------------------------------------------------


async def test_the_audit_buffer_never_grows_past_its_bound_after_a_failed_flush(
    store: Store, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.audit.MAX_BUFFER", 5)
    trail = AuditTrail(store, clock)

    def attempt(n: int) -> ResumeAttempt:
        return ResumeAttempt(n, 1, clock.now_ms(), "POST", 401, "refused", f"call {n}")

    async def failing_write(batch: list[ResumeAttempt], trim: Any = None) -> None:
        for n in range(100, 105):  # attempts keep arriving while the write fails
            trail.record(attempt(n))
        raise StoreUnavailable("injected")

    monkeypatch.setattr(store, "record_resume_attempts", failing_write)
    dropped = REGISTRY.get_sample_value("waitgate_audit_dropped_total") or 0.0
    for n in range(5):
        trail.record(attempt(n))
    with pytest.raises(StoreUnavailable):
        await trail.flush()
    assert trail.dropped == 5
    assert (REGISTRY.get_sample_value("waitgate_audit_dropped_total") or 0.0) - dropped == 5
    written: list[ResumeAttempt] = []

    async def working_write(batch: list[ResumeAttempt], trim: Any = None) -> None:
        written.extend(batch)

    monkeypatch.setattr(store, "record_resume_attempts", working_write)
    await trail.flush()
    assert [a.execution_id for a in written] == [100, 101, 102, 103, 104]  # the newest kept


async def test_a_flush_writes_its_attempts_a_few_at_a_time_and_a_failed_write_keeps_the_rest(
    store: Store, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One write of a whole flush held every resume behind it on SQLite (the resumes' p99)."""
    monkeypatch.setattr("gateway.audit.MAX_WRITE", 3)
    execution = await store.create_execution(NewExecution("wf"), clock.now_ms())
    trail = AuditTrail(store, clock)
    record = store.record_resume_attempts
    sizes: list[int] = []

    async def second_write_fails_once(batch: list[ResumeAttempt], trim: Any = None) -> None:
        sizes.append(len(batch))
        if len(sizes) == 2:
            raise StoreUnavailable("injected")
        await record(batch, trim)

    monkeypatch.setattr(store, "record_resume_attempts", second_write_fails_once)
    for n in range(7):
        trail.record(ResumeAttempt(execution.id, 1, clock.now_ms(), "POST", 401, "refused", f"{n}"))
    with pytest.raises(StoreUnavailable):
        await trail.flush()
    assert sizes == [3, 3]
    assert [a.reason for a in await store.resume_attempts(execution.id)] == ["0", "1", "2"]
    assert trail.buffered == 4
    await trail.flush()
    assert sizes == [3, 3, 3, 1]
    kept = [a.reason for a in await store.resume_attempts(execution.id)]
    assert kept == [str(n) for n in range(7)]  # each once, in order


# --- /readyz gives a fixed reason -----------------------------------------------------------


async def test_readyz_does_not_echo_the_exception_text(
    gateway: tuple[Starlette, httpx.AsyncClient],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = gateway
    svc: Services = app.state.services

    async def ping() -> None:
        raise StoreUnavailable("connection to postgresql://waitgate:hunter2@db.internal failed")

    monkeypatch.setattr(svc.store, "ping", ping)
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "message": "database unavailable",
        "code": 503,
        "status": "unavailable",
        "reason": "database unavailable",
    }
    assert "hunter2" not in response.text
    logged = [r for r in caplog.records if getattr(r, "action", None) == "readyz.unavailable"]
    assert "db.internal" in logged[0].getMessage()


# --- callbacks are allowed by whole origin --------------------------------------------------


async def test_another_port_or_scheme_on_an_allowed_host_is_refused(
    gateway: tuple[Starlette, httpx.AsyncClient], receiver: Receiver
) -> None:
    _, client = gateway
    allowed = origin(receiver.url)
    host, port = allowed.rsplit(":", 1)
    other = int(port) + 1 if int(port) < 65535 else int(port) - 1
    for url, named in [
        (f"{host}:{other}/callbacks", f"{host}:{other}"),
        (f"https{host.removeprefix('http')}:{port}/callbacks", f"https://127.0.0.1:{port}"),
        (f"{host}:5678/api/v1/executions", f"{host}:5678"),
    ]:
        response = await client.post(
            "/api/v1/executions", json={"workflowId": "w", "callbackUrl": url}
        )
        assert response.status_code == 400, url
        assert f"callback origin {named} is not allowed" in response.json()["message"]
    assert (await create(client, callbackUrl=receiver.url))["id"]


@pytest.mark.parametrize("port", ["", ":8080", ":99999"])
async def test_a_legacy_allowed_host_means_default_ports_only(
    settings: Settings, clock: ManualClock, port: str
) -> None:
    legacy = dataclasses.replace(settings, callback_allowed_hosts=("engine.example.com",))
    async with running_gateway(legacy, clock) as (_app, client):
        url = f"http://engine.example.com{port}/hook"
        response = await client.post(
            "/api/v1/executions", json={"workflowId": "w", "callbackUrl": url}
        )
        assert response.status_code == (201 if port == "" else 400), response.text


@pytest.mark.parametrize("explicit", [False, True])
async def test_the_gateways_own_origin_only_when_explicitly_allowed(
    settings: Settings, clock: ManualClock, explicit: bool
) -> None:
    own = dataclasses.replace(
        settings,
        public_url="https://gw.example.com",
        callback_allowed_hosts=("gw.example.com",),
        callback_allowed_origins=("https://gw.example.com",) if explicit else (),
    )
    async with running_gateway(own, clock) as (_app, client):
        url = "https://gw.example.com/api/v1/executions"
        response = await client.post(
            "/api/v1/executions", json={"workflowId": "w", "callbackUrl": url}
        )
        if explicit:
            assert response.status_code == 201, response.text
        else:
            assert response.status_code == 400
            assert "https://gw.example.com:443 is not allowed" in response.json()["message"]


class CountingStream(httpx.AsyncByteStream):
    """An answer body that counts the bytes its reader pulls from the network."""

    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self.inner = inner
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            self.read += len(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_only_a_short_prefix_of_a_huge_answer_is_read_and_kept(
    gateway: tuple[Starlette, httpx.AsyncClient],
    receiver: Receiver,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, client = gateway
    svc: Services = app.state.services
    send = httpx.AsyncClient.send
    streams: list[CountingStream] = []

    async def counting(self: httpx.AsyncClient, request: httpx.Request, **kw: Any) -> Any:
        response = await send(self, request, **kw)
        if str(request.url) == receiver.url:
            assert isinstance(response.stream, httpx.AsyncByteStream)
            response.stream = CountingStream(response.stream)
            streams.append(response.stream)
        return response

    monkeypatch.setattr(httpx.AsyncClient, "send", counting)
    receiver.answer_bytes = 10 * 1024 * 1024
    receiver.default_status = 500
    eid = await resume_with_callback(client, svc, receiver.url)

    async def attempted() -> bool:
        return len(await delivery_errors(client, eid)) > 0

    await until(attempted, clock, 100)
    (error,) = await delivery_errors(client, eid)
    assert error == "answered 500: " + "x" * 200
    (delivery,) = (await client.get(f"/api/v1/executions/{eid}/deliveries")).json()["data"]
    assert delivery["lastError"] == error
    (stream,) = streams
    assert stream.read <= 256 * 1024  # a network read or so, never the 10 MiB


async def test_a_target_no_longer_allowed_fails_at_send_time(
    bg_settings: Settings, clock: ManualClock, receiver: Receiver
) -> None:
    async with running_gateway(bg_settings, clock) as (_app, client):
        eid = (await create(client, callbackUrl=receiver.url))["id"]
        await park(client, eid, webhook={})
    removed = dataclasses.replace(bg_settings, callback_allowed_origins=())
    async with running_gateway(removed, clock) as (_app, client):
        assert (await client.post(f"/api/v1/executions/{eid}/resume", json={})).status_code == 200

        async def attempted() -> bool:
            return len(await delivery_errors(client, eid)) > 0

        await until(attempted, clock, 100)
        (error,) = await delivery_errors(client, eid)
        assert error is not None
        assert f"callback origin {origin(receiver.url)} is not allowed" in error
    assert receiver.received == []


async def test_a_503_does_not_echo_the_driver_message(
    gateway: tuple[Starlette, httpx.AsyncClient],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = gateway
    svc: Services = app.state.services

    async def create_execution(*args: Any) -> Any:
        raise StoreUnavailable("database unavailable: connection refused by db.internal:5432")

    monkeypatch.setattr(svc.store, "create_execution", create_execution)
    response = await client.post("/api/v1/executions", json={"workflowId": "w"})
    assert response.status_code == 503
    assert response.json() == {"message": "database unavailable, try again later", "code": 503}
    assert response.headers["retry-after"] == "1"
    logged = [r for r in caplog.records if getattr(r, "action", None) == "store.unavailable"]
    assert "db.internal" in logged[0].getMessage()


async def test_a_hammered_execution_keeps_its_trail_within_its_bound_and_exactly_it_after_shutdown(
    store: Store, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calls of one URL, refused one after the other: the trail is cut back as it grows, not
    for every call (the usual execution is called once), and to the bound at shutdown."""
    monkeypatch.setattr("persistence.rows.AUDIT_ROWS_KEPT", 10)
    monkeypatch.setattr("gateway.audit.TRIM_EVERY", 4)
    execution = await store.create_execution(NewExecution("wf"), clock.now_ms())
    trail = AuditTrail(store, clock)
    sizes = []
    for n in range(60):
        trail.record(ResumeAttempt(execution.id, 1, clock.now_ms(), "POST", 409, "refused", f"{n}"))
        if n % 3 == 2:
            await trail.flush()
            sizes.append(len(await store.resume_attempts(execution.id)))
    assert max(sizes) == 10 + 4 - 1
    assert sizes[:5] == [3, 6, 9, 10, 13]  # cut at the 2nd, 3rd and 4th flushes (4 rows each)
    await trail.drain()
    kept = await store.resume_attempts(execution.id)
    assert [a.reason for a in kept] == [str(n) for n in range(50, 60)]
