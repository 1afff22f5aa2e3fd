"""Shared fixtures: a real SQLite store in a temporary folder, a manual clock, the app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.auth import generate_key, hash_key
from gateway.clock import Clock, ManualClock
from gateway.config import Secret, Settings
from gateway.domain import Status
from gateway.services import Services
from persistence import open_store
from persistence.base import Store
from tests.backends import postgres_url, truncate_postgres
from tests.receiver import Receiver, running_receiver

BASE_URL = "http://127.0.0.1:5678"
__all__ = ["postgres_url"]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A callback receiver on a loopback socket (``tests.receiver``)."""
    async with running_receiver() as the_receiver:
        yield the_receiver


@pytest.fixture
def clock() -> ManualClock:
    """Time that moves only when a test says so."""
    return ManualClock()


@pytest.fixture(params=["sqlite", "postgres"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database URL of each backend in turn (PostgreSQL only where configured)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'waitgate.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def settings(tmp_path: Path, backend_url: str) -> Settings:
    """Settings for a gateway on a fresh database of each backend."""
    return Settings(
        database_url=backend_url,
        public_url=BASE_URL,
        secret_keys=(Secret("test-secret-key-of-at-least-32-characters"),),
        data_dir=tmp_path,
        max_body_bytes=64 * 1024,
        align_clock_to_database=False,
    )


@pytest.fixture(autouse=True)
async def _empty_postgres(request: pytest.FixtureRequest) -> None:
    """Each test that uses PostgreSQL starts from empty tables."""
    if "backend_url" in request.fixturenames:
        url = request.getfixturevalue("backend_url")
        if url.startswith("postgresql"):
            await truncate_postgres(url)


def sqlite_only(settings: Settings) -> None:
    """Skip a test about SQLite itself on the other backends."""
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("this test is about the SQLite backend")


@pytest.fixture
async def store(backend_url: str) -> AsyncIterator[Store]:
    """An opened, migrated, empty store of each backend."""
    the_store = open_store(backend_url)
    await the_store.open()
    await the_store.migrate()
    yield the_store
    await the_store.close()


@pytest.fixture
async def app(settings: Settings, clock: ManualClock) -> AsyncIterator[Starlette]:
    """The gateway with its lifespan (store, scheduler) running."""
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def svc(app: Starlette) -> Services:
    """The running app's services."""
    found: Services = app.state.services
    return found


async def make_key(svc: Services, *scopes: str, project: str | None = None) -> str:
    """A new API key with these scopes (default admin)."""
    key = generate_key()
    await svc.store.create_api_key(
        "test", hash_key(key), key[:10], scopes or ("admin",), project, svc.clock.now_ms()
    )
    return key


@pytest.fixture
async def admin_key(svc: Services) -> str:
    """An admin API key."""
    return await make_key(svc)


@pytest.fixture
async def client(app: Starlette, admin_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the app that sends the admin key."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE_URL, headers={"X-N8N-API-KEY": admin_key}
    ) as the_client:
        yield the_client


@pytest.fixture
async def anon(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client with no API key (as an external caller of resume URLs)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as the_client:
        yield the_client


async def create(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    """Create an execution; its JSON."""
    response = await client.post("/api/v1/executions", json={"workflowId": "wf-1", **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def park(client: httpx.AsyncClient, execution_id: int, **fields: Any) -> dict[str, Any]:
    """Park an execution; its JSON."""
    response = await client.post(f"/api/v1/executions/{execution_id}/wait", json=fields)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def get(client: httpx.AsyncClient, execution_id: int, **params: str) -> dict[str, Any]:
    """Read an execution; its JSON."""
    response = await client.get(f"/api/v1/executions/{execution_id}", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def fire_timers(svc: Services, execution_id: int) -> None:
    """Run the scheduler until the execution's due wait has resumed.

    The app's own scheduler, woken by the manual clock, may be resuming it at the same moment
    (on PostgreSQL its locked row is then skipped), so this looks until the resume is visible.
    """
    for _ in range(300):
        await svc.scheduler.run_due()
        execution = await svc.store.get_execution(execution_id)
        if execution is not None and execution.status is not Status.WAITING:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"execution {execution_id} never resumed by its timer")


@asynccontextmanager
async def running_gateway(
    settings: Settings, clock: Clock, *, store: Store | None = None
) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """A gateway built from ``settings`` with its lifespan running, and an admin client."""
    application = create_app(settings, clock=clock, store=store)
    async with application.router.lifespan_context(application):
        key = await make_key(application.state.services)
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(
            transport=transport, base_url=BASE_URL, headers={"X-N8N-API-KEY": key}
        ) as admin:
            yield application, admin


def http_scope(
    path: str, query: str, headers: list[tuple[bytes, bytes]], method: str = "POST"
) -> dict[str, Any]:
    """The ASGI scope a server would hand the app for one request (to call it directly)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 5678),
    }
