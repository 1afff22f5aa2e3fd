"""``waitgate serve`` as a real process: park, resume, time out, SIGKILL, restart, lose nothing."""

from __future__ import annotations

import asyncio
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.domain import parse_instant
from tests.process import GatewayProcess

pytestmark = pytest.mark.acceptance


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(tmp_path, {"WAITGATE_MAX_BODY_BYTES": "4096"})
    process.start()
    yield process
    process.kill()


def api(gw: GatewayProcess, key: str) -> httpx.Client:
    return httpx.Client(base_url=gw.url, headers={"X-N8N-API-KEY": key}, timeout=10)


def instant(seconds_from_now: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds_from_now)).isoformat()


def create_and_park(client: httpx.Client, **wait: Any) -> dict[str, Any]:
    created = client.post("/api/v1/executions", json={"workflowId": "acceptance"})
    assert created.status_code == 201, created.text
    parked = client.post(f"/api/v1/executions/{created.json()['id']}/wait", json=wait)
    assert parked.status_code == 200, parked.text
    body: dict[str, Any] = parked.json()
    return body


def first_wait(client: httpx.Client, eid: int) -> dict[str, Any]:
    execution = client.get(f"/api/v1/executions/{eid}", params={"includeData": "true"}).json()
    wait: dict[str, Any] = execution["data"]["waits"][0]
    return {**wait, "status": execution["status"]}


def poll(check: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_resume_timeout_sigkill_restart_loses_nothing(gateway: GatewayProcess) -> None:
    (key,) = gateway.admin_keys()
    with api(gateway, key) as client:
        hooks, while_down = _before_the_kill(gateway, client)
    gateway.start()
    assert gateway.admin_keys() == [key], "a second admin key was printed"
    with api(gateway, key) as client:
        _after_the_restart(client, hooks, while_down)


def _before_the_kill(
    gateway: GatewayProcess, client: httpx.Client
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    hooks = [create_and_park(client, webhook={"httpMethod": "POST"}) for _ in range(4)]
    soon = [create_and_park(client, waitTill=instant(1.0)) for _ in range(3)]
    while_down = [create_and_park(client, waitTill=instant(2.5)) for _ in range(3)]

    answer = httpx.post(hooks[0]["resumeUrl"], json={"approved": True})
    assert (answer.status_code, answer.json()) == (200, {"message": "Workflow was started"})
    wait = first_wait(client, hooks[0]["id"])
    assert (wait["resumedBy"], wait["payload"]["body"]) == ("webhook", {"approved": True})

    poll(lambda: all(first_wait(client, e["id"])["resumedAt"] for e in soon), within=5)
    for execution in soon:
        timed = first_wait(client, execution["id"])
        assert timed["resumedBy"] == "timeout"
        late = parse_instant(timed["resumedAt"], "r") - parse_instant(timed["waitTill"], "w")
        assert 0 <= late < 500, f"timer fired {late} ms late"

    acknowledged = httpx.post(hooks[1]["resumeUrl"], json={"last": "before the kill"})
    assert acknowledged.status_code == 200
    gateway.kill()
    time.sleep(max(0.0, parse_instant(while_down[-1]["waitTill"], "w") / 1000 - time.time()) + 0.3)
    return hooks, while_down


def _after_the_restart(
    client: httpx.Client, hooks: list[dict[str, Any]], while_down: list[dict[str, Any]]
) -> None:
    assert first_wait(client, hooks[1]["id"])["payload"]["body"] == {"last": "before the kill"}
    poll(lambda: all(first_wait(client, e["id"])["resumedAt"] for e in while_down), within=5)
    for execution in while_down:
        assert first_wait(client, execution["id"])["resumedBy"] == "timeout"
    for execution in hooks[2:]:
        assert first_wait(client, execution["id"])["status"] == "waiting"
        assert httpx.post(execution["resumeUrl"]).status_code == 200
    counts = {
        status: len(client.get("/api/v1/executions", params={"status": status}).json()["data"])
        for status in ("running", "waiting")
    }
    assert counts == {"running": 10, "waiting": 0}


def test_secret_key_file_is_private_and_never_printed(gateway: GatewayProcess) -> None:
    secret = gateway.workdir / "secret.key"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    value = secret.read_text().strip()
    assert value
    assert value not in gateway.output()
    assert value not in gateway.logs()
    callback_secret = (gateway.workdir / "callback.secret").read_text().strip()
    assert callback_secret.startswith("whsec_")
    assert callback_secret not in gateway.output() + gateway.logs()


def test_bad_input_over_http_is_4xx_json(gateway: GatewayProcess) -> None:
    (key,) = gateway.admin_keys()
    with api(gateway, key) as client:
        _bad_input(client)


def _bad_input(client: httpx.Client) -> None:
    parked = create_and_park(client, webhook={"httpMethod": "POST"})
    url = parked["resumeUrl"]
    tampered = httpx.post(url[:-3] + ("xyz" if not url.endswith("xyz") else "abc"))
    assert tampered.status_code == 401
    assert tampered.json()["error"] == "Invalid token"
    oversize = httpx.post(url, content=b"x" * 5000)
    assert oversize.status_code == 413
    assert httpx.post(url).status_code == 200
    replay = httpx.post(url)
    assert replay.status_code == 409
    assert "running already" in replay.json()["message"]
    unknown = httpx.post(url.replace(f"/webhook-waiting/{parked['id']}?", "/webhook-waiting/999?"))
    assert unknown.status_code == 401  # a signature is bound to its execution
    missing = client.get("/api/v1/executions/999")
    assert (missing.status_code, missing.json()["message"]) == (
        404,
        'The execution "999" does not exist.',
    )
    malformed = client.post(
        "/api/v1/executions", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400
    assert "not valid JSON" in malformed.json()["message"]


def test_two_workers_resume_exactly_once(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path, workers=2)
    gateway.start()
    try:
        (key,) = gateway.admin_keys()
        with api(gateway, key) as client:
            parked = [create_and_park(client, webhook={"httpMethod": "POST"}) for _ in range(5)]

        async def hammer() -> list[int]:
            async with httpx.AsyncClient(timeout=10) as http:
                calls = [http.post(p["resumeUrl"]) for p in parked for _ in range(8)]
                return [r.status_code for r in await asyncio.gather(*calls)]

        codes = asyncio.run(hammer())
        assert codes.count(200) == len(parked)
        assert codes.count(409) == len(codes) - len(parked)
        with api(gateway, key) as client:
            for execution in parked:
                assert first_wait(client, execution["id"])["resumedBy"] == "webhook"
    finally:
        gateway.kill()
