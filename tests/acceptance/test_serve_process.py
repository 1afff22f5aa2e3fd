"""What a real ``waitgate serve`` says and hands out at start: the public URL derived from the
port it serves, a warning when a given one plainly misses it, the start-up line, and logs that
are JSON line by line (uvicorn's own included) with timezone-aware timestamps."""

from __future__ import annotations

import json
import re
import socket
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.process import WAITGATE, GatewayProcess

pytestmark = pytest.mark.acceptance
OFFSET = re.compile(r"T\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")


def log_lines(gateway: GatewayProcess) -> list[dict[str, Any]]:
    """Every stderr line, parsed as JSON (a line that is not JSON fails the test)."""
    lines = gateway.stderr_path.read_text().splitlines()
    assert lines
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
    return parsed


def with_action(gateway: GatewayProcess, action: str) -> list[dict[str, Any]]:
    """The log lines with this ``action``."""
    return [line for line in log_lines(gateway) if line.get("action") == action]


def parked_resume_url(gateway: GatewayProcess) -> str:
    """Create and park an execution with the admin key; its resume URL."""
    (key,) = gateway.admin_keys()
    with httpx.Client(base_url=gateway.url, headers={"X-N8N-API-KEY": key}, timeout=10) as api:
        created = api.post("/api/v1/executions", json={"workflowId": "port"})
        assert created.status_code == 201, created.text
        eid = created.json()["id"]
        parked = api.post(
            f"/api/v1/executions/{eid}/wait", json={"webhook": {"httpMethod": "POST"}}
        )
        assert parked.status_code == 200, parked.text
        url: str = parked.json()["resumeUrl"]
        return url


def test_without_a_public_url_resume_urls_use_the_port_served(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path)
    del gateway.env["WAITGATE_PUBLIC_URL"]
    gateway.start()
    try:
        url = parked_resume_url(gateway)
        assert url.startswith(f"http://127.0.0.1:{gateway.port}/webhook-waiting/")
        assert httpx.post(url, json={}, timeout=10).status_code == 200
        (serving,) = with_action(gateway, "gateway.serving")
        assert serving["listen"] == serving["public_url"] == gateway.url
        assert "WAITGATE_PUBLIC_URL is unset" in serving["public_url_from"]
        assert serving["database"] == f"sqlite:///{tmp_path / 'waitgate.db'}"
        assert serving["docs"] == f"{gateway.url}/api/v1/docs"
        assert serving["dashboard"] == f"{gateway.url}/ui"
        assert with_action(gateway, "config.public_url") == []
        assert f"more keys: {WAITGATE} api-key create" in gateway.output()  # as it was called
    finally:
        gateway.kill()


def test_a_public_url_on_another_port_of_this_machine_is_warned_about(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path)
    other = gateway.port + 1 if gateway.port < 65535 else gateway.port - 1
    given = f"http://localhost:{other}"
    gateway.env["WAITGATE_PUBLIC_URL"] = given
    gateway.start()
    try:
        assert parked_resume_url(gateway).startswith(f"{given}/webhook-waiting/")
        (warning,) = with_action(gateway, "config.public_url")
        assert warning["level"] == "warning"
        assert f"port {other}" in warning["message"]
        assert f"port {gateway.port}" in warning["message"]
        (serving,) = with_action(gateway, "gateway.serving")
        assert (serving["public_url"], serving["public_url_from"]) == (given, "WAITGATE_PUBLIC_URL")
    finally:
        gateway.kill()


def test_every_log_line_is_json_with_a_timezone_aware_time(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path, {"WAITGATE_LOG_LEVEL": "debug"}, workers=2)
    gateway.start()
    try:
        assert httpx.get(gateway.url + "/healthz", timeout=10).status_code == 200
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
            sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")  # uvicorn logs this itself
            sock.recv(1024)
    finally:
        gateway.stop()
    lines = log_lines(gateway)
    for line in lines:
        assert OFFSET.search(line["time"]), line
        assert datetime.fromisoformat(line["time"]).utcoffset() is not None
        assert "\x1b" not in json.dumps(line)  # no terminal colors
    loggers = {line["logger"] for line in lines}
    assert {"uvicorn.error", "waitgate.serve", "waitgate.app"} <= loggers
    messages = " ".join(line["message"] for line in lines)
    assert "Invalid HTTP request" in messages
    assert "gateway stopped" in messages
