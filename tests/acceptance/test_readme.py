"""The README's API walkthrough, run as written against a real ``waitgate serve``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.process import GatewayProcess

pytestmark = pytest.mark.acceptance
README = Path(__file__).resolve().parents[2] / "README.md"


def walkthrough() -> str:
    """The shell block under "API in five calls"."""
    section = README.read_text().split("## API in five calls", 1)[1]
    found = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert found is not None, "the README lost its walkthrough"
    return found.group(1)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's examples use curl")
def test_the_readme_walkthrough_works(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path)
    gateway.start()
    try:
        (key,) = gateway.admin_keys()
        script = walkthrough().replace("http://127.0.0.1:5678", gateway.url)
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            env={**os.environ, "KEY": key},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        assert '{"message":"Workflow was started"}' in run.stdout
        execution = httpx.get(
            f"{gateway.url}/api/v1/executions/1",
            params={"includeData": "true"},
            headers={"X-N8N-API-KEY": key},
        ).json()
        assert execution["status"] == "success"
        assert execution["customData"] == {"orderId": "A-1001"}
        assert execution["data"]["waits"][0]["payload"]["body"] == {"approved": True}
        assert execution["data"]["result"] == {"approved": True}
    finally:
        gateway.kill()
