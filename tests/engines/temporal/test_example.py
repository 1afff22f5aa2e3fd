"""The example as its README runs it: ``waitgate serve``, ``waitgate relay --engine
temporal`` and ``python -m examples.temporal.run`` as real processes, against the dev server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from tests.engines.temporal.conftest import ON_SESSION_LOOP, eventually
from tests.process import GatewayProcess
from tests.receiver import free_port

pytestmark = ON_SESSION_LOOP
ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


@pytest.fixture
def relay_port() -> int:
    return free_port()


@pytest.fixture
def served(tmp_path: Path, relay_port: int) -> Iterator[GatewayProcess]:
    """``waitgate serve`` allowed to call the relay back (step 2 of the README)."""
    origin = f"http://127.0.0.1:{relay_port}"
    gateway = GatewayProcess(tmp_path, {"WAITGATE_CALLBACK_ALLOWED_ORIGINS": origin})
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture
def relay(
    tmp_path: Path, served: GatewayProcess, relay_port: int, temporal: WorkflowEnvironment
) -> Iterator[str]:
    """``waitgate relay --engine temporal`` with the gateway's secret file (step 3)."""
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": "default",
    }
    command = [
        str(BIN / "waitgate"),
        "relay",
        "--engine",
        "temporal",
        "--port",
        str(relay_port),
        "--state",
        str(tmp_path / "relay.db"),
        "--secret-file",
        str(tmp_path / "callback.secret"),  # the data dir: beside the database
    ]
    with (tmp_path / "relay.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{relay_port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).json()["status"] == "ok":
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None:
                raise RuntimeError((tmp_path / "relay.log").read_text())
            time.sleep(0.05)
        else:
            raise RuntimeError("the relay did not start: " + (tmp_path / "relay.log").read_text())
        yield f"{url}/"
    finally:
        process.terminate()
        process.wait(10)


async def test_example_ships_the_approved_order(
    served: GatewayProcess, relay: str, temporal: WorkflowEnvironment
) -> None:
    (admin_key,) = served.admin_keys()
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
        "WAITGATE_URL": served.url,
        "WAITGATE_API_KEY": admin_key,
        "WAITGATE_RELAY_URL": relay,
    }
    example = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "examples.temporal.run",
        "--order",
        "A-1001",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert example.stdout is not None
    try:
        async with asyncio.timeout(60):
            line = (await example.stdout.readline()).decode()
        assert line.startswith("Approve: "), line + await _stderr(example)
        url = line.removeprefix("Approve: ").strip()
        async with httpx.AsyncClient() as http:
            page = await http.get(url)
            assert "Ship order A-1001?" in page.text
            answer = await http.post(url, data={"decision": "approve"})
            assert answer.status_code == 200, answer.text
        async with asyncio.timeout(60):
            out = (await example.stdout.readline()).decode()
            assert await example.wait() == 0, await _stderr(example)
    finally:
        if example.returncode is None:
            example.kill()
            await example.wait()
    assert json.loads(out) == {
        "order": "A-1001",
        "shipped": True,
        "resumedBy": "form",
        "timedOut": False,
    }

    async def finished() -> bool:
        async with httpx.AsyncClient(headers={"X-N8N-API-KEY": admin_key}) as http:
            found = (await http.get(f"{served.url}/api/v1/executions/1")).json()
        return bool(found["status"] == "success")

    await eventually(finished, what="the execution to be finished")


async def _stderr(process: asyncio.subprocess.Process) -> str:
    if process.stderr is None:
        return ""
    try:
        async with asyncio.timeout(5):
            return (await process.stderr.read()).decode()[-3000:]
    except TimeoutError:
        return ""
