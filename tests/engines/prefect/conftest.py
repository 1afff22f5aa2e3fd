"""Prefect's own test server (once per session), a real waitgate and the relay, each on a
loopback socket, and flows run in threads (a paused flow holds its thread until resumed).

Prefect's settings (``PREFECT_API_URL`` of the test server) live in a context variable, which
new threads do not inherit: every thread here runs in a copy of the test's context.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

# No telemetry from Prefect's test server (there is no network to send it to).
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
prefect = pytest.importorskip("prefect", reason="the Prefect adapter needs waitgate[prefect]")

from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from gateway.integrations.prefect import Waitgate, relay_adapter  # noqa: E402
from gateway.integrations.relay import relay_app  # noqa: E402
from tests.engines.harness import GatewayThread, ServedApp  # noqa: E402
from tests.receiver import free_port  # noqa: E402

pytestmark = pytest.mark.timeout(120)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Prefect's own warnings, narrowly: its clients of its API server (in the flow threads'
    engines and the relay) leave connections to be collected after a test; ours close
    theirs."""
    for item in items:
        item.add_marker(pytest.mark.filterwarnings("ignore:unclosed:ResourceWarning"))


@pytest.fixture(autouse=True)
def _collect_prefect_garbage() -> Iterator[None]:
    """Collect what Prefect's clients left behind while the test's warning filters apply,
    rather than after the session, where ``filterwarnings = error`` would fail the run."""
    yield
    gc.collect()


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[contextvars.Context]:
    """Prefect's test server for the session; the context whose settings point at it."""
    with prefect_test_harness(server_startup_timeout=60):
        yield contextvars.copy_context()
    gc.collect()


class Loop:
    """A real waitgate, the relay between it and Prefect, and a way to run flows."""

    def __init__(
        self, context: contextvars.Context, gateway: GatewayThread, relay_url: str
    ) -> None:
        self.context = context
        self.gateway = gateway
        self.relay_url = relay_url
        self.gate = Waitgate(gateway.url, gateway.admin_key, relay_url)
        self.pool = ThreadPoolExecutor(4, thread_name_prefix="flow")

    def start(self, flow: Callable[..., Any], **parameters: Any) -> Future[Any]:
        """Run ``flow`` in a thread (it blocks while paused); its future result."""

        def run() -> Any:
            started = flow(**parameters)
            return asyncio.run(started) if asyncio.iscoroutine(started) else started

        return self.pool.submit(self.context.copy().run, run)

    def api(self, method: str, path: str) -> httpx.Response:
        """One call of waitgate's API with the admin key."""
        with self.gateway.client() as client:
            return client.request(method, path)

    def prefect(self, work: Callable[[Any], Any]) -> Any:
        """Run ``work(client)`` with a Prefect client of the test server."""

        async def run() -> Any:
            async with prefect.get_client() as client:
                return await work(client)

        return self.context.copy().run(asyncio.run, run())


@pytest.fixture
def loop(prefect_server: contextvars.Context, tmp_path: Path) -> Iterator[Loop]:
    """A fresh waitgate and relay around the session's Prefect server."""
    relay_port = free_port()
    origin = f"http://127.0.0.1:{relay_port}"
    with GatewayThread(tmp_path, allowed_origins=(origin,)) as gateway:
        app = relay_app(
            relay_adapter,
            [gateway.callback_secret],
            now=lambda: gateway.clock.now_ms() / 1000,
        )
        with ServedApp(app, "relay", port=relay_port, context=prefect_server) as relay:
            the_loop = Loop(prefect_server, gateway, f"{relay.url}/callbacks")
            yield the_loop
            the_loop.pool.shutdown(wait=False, cancel_futures=True)
