"""The Starlette app: factory, lifespan (store, migrations, scheduler) and routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.clock import Clock, SystemClock
from gateway.config import Settings
from gateway.http import EXCEPTION_HANDLERS, JSONResponse
from gateway.logs import configure_logging
from gateway.routes import engine, public, tags, webhook
from gateway.scheduler import Scheduler
from gateway.services import Services, services
from gateway.signing import ResumeSigner
from persistence import open_store
from persistence.base import Store

log = logging.getLogger("waitgate.app")


async def healthz(request: Request) -> Response:
    """The process is alive."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """The database answers and its schema is current."""
    svc = services(request)
    try:
        await svc.store.ping()
        pending = await svc.store.pending_migrations()
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "reason": str(exc)}, status_code=503)
    if pending:
        return JSONResponse(
            {"status": "unavailable", "reason": f"migrations pending: {pending}"}, status_code=503
        )
    return JSONResponse({"status": "ok"})


def create_app(
    settings: Settings, *, clock: Clock | None = None, store: Store | None = None
) -> Starlette:
    """The gateway app. ``settings`` must carry at least one secret key."""
    clock = clock or SystemClock()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        the_store = store or open_store(settings.database_url)
        await the_store.open()
        try:
            await the_store.migrate()
            scheduler = Scheduler(
                the_store,
                clock,
                batch_size=settings.scheduler_batch_size,
                max_sleep_ms=int(settings.scheduler_max_sleep_seconds * 1000),
            )
            app.state.services = Services(
                settings=settings,
                store=the_store,
                clock=clock,
                signer=ResumeSigner(settings.secret_keys, settings.public_url),
                scheduler=scheduler,
            )
            task = asyncio.create_task(scheduler.run(), name="waitgate-scheduler")
            log.info("gateway started", extra={"action": "gateway.started"})
            try:
                yield
            finally:
                scheduler.stop()
                try:
                    await asyncio.wait_for(task, settings.shutdown_timeout_seconds)
                except TimeoutError:
                    log.warning("scheduler did not stop in time", extra={"action": "gateway.abort"})
        finally:
            await the_store.close()
            log.info("gateway stopped", extra={"action": "gateway.stopped"})

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        *public.routes,
        *engine.routes,
        *tags.routes,
        *webhook.routes,
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers=EXCEPTION_HANDLERS)


def app_from_env() -> Starlette:
    """Factory for uvicorn: settings from the environment (``waitgate serve`` uses this)."""
    settings = Settings.from_env().with_secret_keys()
    configure_logging(settings.log_level)
    return create_app(settings)
