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


def walkthrough(heading: str = "## API in five calls") -> str:
    """The first shell block under ``heading``."""
    section = README.read_text().split(heading, 1)[1]
    found = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert found is not None, f"the README lost its block under {heading!r}"
    return found.group(1)


def run_block(gateway: GatewayProcess, key: str, heading: str) -> str:
    """Run a README shell block as written against ``gateway``; its standard output."""
    script = walkthrough(heading).replace("http://127.0.0.1:5678", gateway.url)
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env={**os.environ, "KEY": key},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's examples use curl")
def test_the_readme_walkthrough_works(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path)
    gateway.start()
    try:
        (key,) = gateway.admin_keys()
        output = run_block(gateway, key, "## API in five calls")
        assert '{"message":"Workflow was started"}' in output
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


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's examples use curl")
def test_the_readme_events_example_works(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path)
    gateway.start()
    try:
        (key,) = gateway.admin_keys()
        output = run_block(gateway, key, "## Events: resume by what the partner sends")
        assert '{"matched":1}' in output
        execution = httpx.get(
            f"{gateway.url}/api/v1/executions/1",
            params={"includeData": "true"},
            headers={"X-N8N-API-KEY": key},
        ).json()
        assert execution["status"] == "running"
        payload = execution["data"]["waits"][0]["payload"]
        assert payload["resumedBy"] == "event"
        assert payload["eventId"] == "evt_1"
        assert payload["body"]["data"]["object"]["metadata"]["orderId"] == "A-1001"
    finally:
        gateway.kill()
