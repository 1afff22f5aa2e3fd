"""A real ``waitgate serve`` driven over HTTP: resumes, timers, SIGKILL, bad input, two workers."""

from __future__ import annotations

import stat
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.domain import parse_instant
from tests.acceptance.conftest import SpawnGateway
from tests.process import GatewayProcess

pytestmark = pytest.mark.acceptance

STATUSES = ("canceled", "crashed", "error", "new", "running", "success", "unknown", "waiting")


def admin(gateway: GatewayProcess) -> httpx.Client:
    """A client of the gateway that sends the admin key printed at its first start."""
    (key,) = gateway.admin_keys()
    return httpx.Client(base_url=gateway.url, headers={"X-N8N-API-KEY": key}, timeout=10)


def in_seconds(seconds: float) -> str:
    """An RFC 3339 instant ``seconds`` from now."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def park(client: httpx.Client, **wait: Any) -> dict[str, Any]:
    """Create an execution and park it at one wait; the park answer (id, resumeUrl, waitTill)."""
    created = client.post("/api/v1/executions", json={"workflowId": "acceptance"})
    assert created.status_code == 201, created.text
    parked = client.post(f"/api/v1/executions/{created.json()['id']}/wait", json=wait)
    assert parked.status_code == 200, parked.text
    body: dict[str, Any] = parked.json()
    assert body["status"] == "waiting"
    return body


def execution(client: httpx.Client, eid: int) -> dict[str, Any]:
    """The execution with its data (waits included)."""
    answer = client.get(f"/api/v1/executions/{eid}", params={"includeData": "true"})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def last_wait(client: httpx.Client, eid: int) -> dict[str, Any]:
    """The execution's latest wait."""
    wait: dict[str, Any] = execution(client, eid)["data"]["waits"][-1]
    return wait


def poll(check: Callable[[], bool], within: float) -> None:
    """Until ``check()`` holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        time.sleep(0.05)


def ids_by_status(client: httpx.Client) -> dict[str, set[int]]:
    """Every execution id, by status (each status asked for on its own)."""
    found: dict[str, set[int]] = {}
    for status in STATUSES:
        page = client.get("/api/v1/executions", params={"status": status, "limit": 250})
        assert page.status_code == 200, page.text
        found[status] = {e["id"] for e in page.json()["data"]}
    return found


def assert_timed_out_on_time(client: httpx.Client, eid: int, not_before_ms: int = 0) -> None:
    """The wait was resumed by its timer, less than 500 ms after its deadline."""
    wait = last_wait(client, eid)
    assert wait["resumedBy"] == "timeout", wait
    due = parse_instant(wait["waitTill"], "waitTill")
    resumed = parse_instant(wait["resumedAt"], "resumedAt")
    assert 0 <= resumed - due < 500, f"timer fired {resumed - due} ms after its deadline"
    assert resumed >= not_before_ms


def test_a_webhook_resume_and_a_timer_resume(spawn_gateway: SpawnGateway) -> None:
    gateway = spawn_gateway()
    with admin(gateway) as client:
        hooks = [park(client, webhook={"httpMethod": "POST"}) for _ in range(3)]
        timers = [park(client, waitTill=in_seconds(1.5)) for _ in range(2)]

        answer = httpx.post(hooks[0]["resumeUrl"], json={"approved": True, "by": "ada"})
        assert answer.status_code == 200
        assert answer.json() == {"message": "Workflow was started"}
        resumed = execution(client, hooks[0]["id"])
        assert resumed["status"] == "running"
        (wait,) = resumed["data"]["waits"]
        assert wait["resumedBy"] == "webhook"
        assert wait["payload"]["body"] == {"approved": True, "by": "ada"}
        assert wait["payload"]["resumedBy"] == "webhook"

        assert all(execution(client, t["id"])["status"] == "waiting" for t in timers)
        poll(lambda: all(last_wait(client, t["id"])["resumedAt"] for t in timers), within=5)
        for timer in timers:
            assert_timed_out_on_time(client, timer["id"])
            assert execution(client, timer["id"])["status"] == "running"
        for hook in hooks[1:]:
            assert execution(client, hook["id"])["status"] == "waiting"


def test_sigkill_while_parked_then_restart_loses_nothing(spawn_gateway: SpawnGateway) -> None:
    gateway = spawn_gateway()
    (key,) = gateway.admin_keys()
    with admin(gateway) as client:
        hooks = [park(client, webhook={"httpMethod": "POST"}) for _ in range(4)]
        due_while_down = [park(client, waitTill=in_seconds(1.5)) for _ in range(3)]
        later = park(client, waitTill=in_seconds(3600))
        acknowledged = httpx.post(hooks[0]["resumeUrl"], json={"sent": "just before the kill"})
        assert acknowledged.status_code == 200
    gateway.kill()
    killed_ms = time.time_ns() // 1_000_000
    last_due = max(parse_instant(t["waitTill"], "waitTill") for t in due_while_down)
    time.sleep(max(0.0, last_due / 1000 - time.time()) + 0.2)  # every timer is overdue now
    printed_before = len(gateway.output())

    gateway.start()

    assert "wg_" not in gateway.output()[printed_before:], "a second admin key was printed"
    assert gateway.admin_keys() == [key]
    with admin(gateway) as client:
        wait = last_wait(client, hooks[0]["id"])
        assert (wait["resumedBy"], wait["payload"]["body"]) == (
            "webhook",
            {"sent": "just before the kill"},
        )
        poll(lambda: all(last_wait(client, t["id"])["resumedAt"] for t in due_while_down), 5)
        for timer in due_while_down:
            wait = last_wait(client, timer["id"])
            assert wait["resumedBy"] == "timeout"
            assert parse_instant(wait["resumedAt"], "resumedAt") > killed_ms
        for hook in hooks[1:]:
            again = httpx.post(hook["resumeUrl"], json={"after": "restart"})
            assert again.status_code == 200, again.text
            assert last_wait(client, hook["id"])["payload"]["body"] == {"after": "restart"}
        everything = {h["id"] for h in hooks} | {t["id"] for t in due_while_down}
        by_status = ids_by_status(client)
        assert by_status["running"] == everything
        assert by_status["waiting"] == {later["id"]}
        assert all(not ids for s, ids in by_status.items() if s not in {"running", "waiting"})


def test_secret_key_file_is_private_and_never_printed(spawn_gateway: SpawnGateway) -> None:
    gateway = spawn_gateway()
    secret_file = gateway.workdir / "secret.key"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text().strip()
    assert len(secret) >= 32
    with admin(gateway) as client:
        parked = park(client, webhook={"httpMethod": "POST"})
        assert secret not in parked["resumeUrl"]
        assert httpx.post(parked["resumeUrl"]).status_code == 200
    gateway.kill()
    gateway.start()
    assert secret_file.read_text().strip() == secret, "the key was replaced on restart"
    printed = gateway.output() + gateway.stderr_path.read_text()
    assert "admin API key" in printed  # the output was captured at all
    assert secret not in printed


def _assert_json_error(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = answer.json()
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


def test_bad_input_gets_4xx_json_never_500(spawn_gateway: SpawnGateway) -> None:
    gateway = spawn_gateway({"WAITGATE_MAX_BODY_BYTES": "2048"})
    with admin(gateway) as client:
        parked = park(client, webhook={"httpMethod": "POST"})
        url: str = parked["resumeUrl"]
        eid = parked["id"]

        forged = url[:-4] + ("AAAA" if not url.endswith("AAAA") else "BBBB")
        tampered = _assert_json_error(httpx.post(forged, json={}), 401)
        assert tampered["error"] == "Invalid token"
        unsigned = _assert_json_error(httpx.post(url.partition("?")[0]), 401)
        assert unsigned["error"] == "Invalid token"

        _assert_json_error(httpx.post(url, content=b"x" * 4096), 413)

        def chunks() -> Iterator[bytes]:
            yield from (b"y" * 1024 for _ in range(4))

        _assert_json_error(httpx.post(url, content=chunks()), 413)
        assert execution(client, eid)["status"] == "waiting", "a refused call used up the wait"

        assert httpx.post(url, json={"n": 1}).status_code == 200
        replay = _assert_json_error(httpx.post(url, json={"n": 2}), 409)
        assert replay["message"] == f'The execution "{eid}" is running already.'
        assert last_wait(client, eid)["payload"]["body"] == {"n": 1}

        gone = park(client, webhook={"httpMethod": "POST"})
        assert client.delete(f"/api/v1/executions/{gone['id']}").status_code == 200
        missing = _assert_json_error(httpx.post(gone["resumeUrl"]), 404)
        assert missing["message"] == f'The execution "{gone["id"]}" does not exist.'
        unknown = _assert_json_error(client.get("/api/v1/executions/987654"), 404)
        assert unknown["message"] == 'The execution "987654" does not exist.'

        json_headers = {"content-type": "application/json"}
        for path in ("/api/v1/executions", f"/api/v1/executions/{eid}/finish"):
            malformed = client.post(path, content=b"{oops", headers=json_headers)
            assert "not valid JSON" in _assert_json_error(malformed, 400)["message"]
        wrong_type = client.post("/api/v1/executions", json={"workflowId": 12})
        assert "workflowId" in _assert_json_error(wrong_type, 400)["message"]
        _assert_json_error(client.post(f"/api/v1/executions/{eid}/wait", json=[]), 400)
        _assert_json_error(httpx.get(gateway.url + "/api/v1/executions"), 401)
    errors = gateway.stderr_path.read_text()
    assert "Traceback" not in errors
    assert "error.internal" not in errors


def _worker_processes(gateway: GatewayProcess) -> list[int]:
    """The ids of uvicorn's worker processes: children of the main one started by spawn."""
    assert gateway.pid is not None
    children = Path(f"/proc/{gateway.pid}/task/{gateway.pid}/children").read_text().split()
    return [
        int(pid)
        for pid in children
        if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    ]


def test_two_workers_resume_each_url_exactly_once(spawn_gateway: SpawnGateway) -> None:
    gateway = spawn_gateway(workers=2)
    assert len(_worker_processes(gateway)) == 2
    with admin(gateway) as client:
        parked = [park(client, webhook={"httpMethod": "POST"}) for _ in range(3)]
        timers = [park(client, waitTill=in_seconds(1.0)) for _ in range(2)]
    callers_per_url = 12
    start = threading.Barrier(callers_per_url * len(parked))

    def resume(url: str, n: int) -> int:
        start.wait(timeout=10)
        return httpx.post(url, json={"caller": n}, timeout=15).status_code

    with ThreadPoolExecutor(max_workers=callers_per_url * len(parked)) as pool:
        futures = {
            p["id"]: [pool.submit(resume, p["resumeUrl"], n) for n in range(callers_per_url)]
            for p in parked
        }
        codes = {eid: sorted(f.result() for f in fs) for eid, fs in futures.items()}
    for eid, answers in codes.items():
        assert answers == [200] + [409] * (callers_per_url - 1), (eid, answers)
    with admin(gateway) as client:
        for eid in codes:
            wait = last_wait(client, eid)
            assert wait["resumedBy"] == "webhook"
            assert wait["payload"]["body"]["caller"] in range(callers_per_url)
        poll(lambda: all(last_wait(client, t["id"])["resumedAt"] for t in timers), within=5)
        for timer in timers:
            assert_timed_out_on_time(client, timer["id"])
