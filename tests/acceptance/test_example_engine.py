"""``examples/approval_engine.py`` works end to end against a real gateway, as the README says:
it parks on an approval page, is approved through the page's form, and says in one line why
it stops when the gateway refuses its callback URL or cannot be reached."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.process import GatewayProcess
from tests.receiver import free_port

pytestmark = pytest.mark.acceptance
EXAMPLE = Path(__file__).parents[2] / "examples" / "approval_engine.py"


def engine_env(gateway_url: str, key: str, engine_port: int) -> dict[str, str]:
    """The example's environment: which gateway, which key, which port for callbacks."""
    return {
        **os.environ,
        "WAITGATE_URL": gateway_url,
        "WAITGATE_API_KEY": key,
        "ENGINE_PORT": str(engine_port),
        "WAITGATE_CALLBACK_SECRET": "whsec_" + "A" * 44,
    }


def run_to_the_end(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the example until it exits by itself."""
    return subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_example_engine_finishes_an_execution_approved_on_its_page(tmp_path: Path) -> None:
    engine_port = free_port()
    gateway = GatewayProcess(
        tmp_path, {"WAITGATE_CALLBACK_ALLOWED_ORIGINS": f"http://127.0.0.1:{engine_port}"}
    )
    gateway.start()
    try:
        (key,) = gateway.admin_keys()
        env = engine_env(gateway.url, key, engine_port)
        env["WAITGATE_CALLBACK_SECRET"] = (tmp_path / "callback.secret").read_text().strip()
        engine = subprocess.Popen(
            [sys.executable, str(EXAMPLE)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert engine.stdout is not None
            lines = []
            deadline = time.monotonic() + 20
            url = None
            while url is None and time.monotonic() < deadline:
                line = engine.stdout.readline()
                lines.append(line)
                found = re.search(r"^\s+(http://\S+/approval/\d+\?signature=\S+)$", line)
                url = found.group(1) if found else None
            assert url is not None, "".join(lines)
            with httpx.Client(timeout=10) as browser:
                shown = browser.get(url)  # what a link scanner does: nothing happens
                assert shown.status_code == 200
                assert "Approve a laptop?" in shown.text
                action = re.search(r'<form method="post" action="([^"]*)"', shown.text)
                assert action is not None, shown.text
                answered = browser.post(
                    str(shown.url.join(action.group(1))), data={"decision": "approve"}
                )
                assert answered.status_code == 200, answered.text
            out, err = engine.communicate(timeout=20)
        finally:
            engine.kill()
        assert engine.returncode == 0, err
        assert "approved: True" in out
        assert "is now success" in out
    finally:
        gateway.kill()


def test_a_refused_callback_url_stops_the_example_with_one_line(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path)  # no callback origin allowed
    gateway.start()
    try:
        (key,) = gateway.admin_keys()
        engine_port = free_port()
        done = run_to_the_end(engine_env(gateway.url, key, engine_port), tmp_path)
    finally:
        gateway.kill()
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("approval_engine: the gateway refused (400): ")
    assert f"WAITGATE_CALLBACK_ALLOWED_ORIGINS=http://127.0.0.1:{engine_port}" in line


def test_an_unreachable_gateway_stops_the_example_with_one_line(tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    done = run_to_the_end(engine_env(nobody, "wg_unused", free_port()), tmp_path)
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"approval_engine: cannot reach the gateway at {nobody}: ")
