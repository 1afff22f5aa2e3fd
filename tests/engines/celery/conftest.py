"""Celery engine tests: Redis on 127.0.0.1:6379 (database 13, emptied before and after), a
real worker in this process, waitgate in a thread, and the relay on a socket in the test's
loop built by ``relay_adapter()`` as ``waitgate relay --engine celery`` builds it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery", reason="Celery is not installed: make test-engine-celery")
redis = pytest.importorskip("redis", reason="redis-py is not installed: make test-engine-celery")

from celery.contrib.testing.worker import start_worker  # noqa: E402

from gateway.integrations.celery import APP_ENV, relay_adapter  # noqa: E402
from tests.engines.celery.tasks import REDIS_URL, RUNS, app  # noqa: E402
from tests.engines.harness import GatewayThread  # noqa: E402
from tests.engines.relay_socket import RelaySocket, relay_origin, running_relay  # noqa: E402

ENGINE_WARNINGS = (
    # Celery's Redis result backend calls setex, which redis-py 8.1 deprecates.
    "ignore:Call to deprecated setex:DeprecationWarning",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Let the engine's own known deprecation warnings pass (every other warning fails)."""
    for item in items:
        if "tests/engines/celery" in str(item.path):
            for rule in ENGINE_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(rule))


@pytest.fixture(scope="session")
def redis_db() -> Iterator[Any]:
    """Our own Redis database, empty; emptied again at the end."""
    db = redis.Redis.from_url(REDIS_URL)
    try:
        db.ping()
    except redis.ConnectionError:
        db.close()
        pytest.fail("Redis is not answering on 127.0.0.1:6379 (.ci/run starts it)")
    db.flushdb()
    yield db
    db.flushdb()
    db.close()


@pytest.fixture(scope="session")
def worker(redis_db: Any) -> Iterator[Any]:
    """One solo worker of the test app, in a thread of this process."""
    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING") as running:
        yield running


@dataclass
class World:
    """The gateway, the relay in front of Celery, Redis and the worker."""

    gateway: GatewayThread
    relay: RelaySocket
    db: Any


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[GatewayThread, int]]:
    """waitgate, allowed to call back the relay's port."""
    port, origin = relay_origin()
    with GatewayThread(tmp_path, allowed_origins=(origin,)) as running:
        yield running, port


@pytest.fixture
async def world(
    gateway: tuple[GatewayThread, int],
    worker: Any,
    redis_db: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[World]:
    """Everything running, configured through the environment as a user would."""
    running, port = gateway
    redis_db.delete(RUNS)
    monkeypatch.setenv("WAITGATE_URL", running.url)
    monkeypatch.setenv("WAITGATE_API_KEY", running.admin_key)
    monkeypatch.setenv("WAITGATE_RELAY_URL", f"http://127.0.0.1:{port}/callbacks")
    monkeypatch.setenv(APP_ENV, "tests.engines.celery.tasks:app")
    async with running_relay(relay_adapter, running, port) as relay:
        yield World(running, relay, redis_db)
