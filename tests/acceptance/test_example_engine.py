"""``examples/approval_engine.py`` works end to end against a real gateway, as the README says."""

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


def test_the_example_engine_finishes_an_approved_execution(tmp_path: Path) -> None:
    engine_port = free_port()
    gateway = GatewayProcess(
        tmp_path, {"WAITGATE_CALLBACK_ALLOWED_ORIGINS": f"http://127.0.0.1:{engine_port}"}
    )
    gateway.start()
    try:
        (key,) = gateway.admin_keys()
        env = {
            **os.environ,
            "WAITGATE_URL": gateway.url,
            "WAITGATE_API_KEY": key,
            "ENGINE_PORT": str(engine_port),
            "WAITGATE_CALLBACK_SECRET": (tmp_path / "callback.secret").read_text().strip(),
        }
        engine = subprocess.Popen(
            [sys.executable, str(EXAMPLE)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
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
                found = re.search(r"curl -X POST '([^']+)'", line)
                url = found.group(1) if found else None
            assert url is not None, "".join(lines)
            assert httpx.post(url, json={"approved": True}).status_code == 200
            out, _ = engine.communicate(timeout=20)
        finally:
            engine.kill()
        assert engine.returncode == 0
        assert "resumed by webhook; approved: True" in out
        assert "is now success" in out
    finally:
        gateway.kill()
