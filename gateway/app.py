"""The Starlette app: factory, lifespan (store, migrations, scheduler) and routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.access_log import AccessLog
from gateway.answers import AnswerPolicy
from gateway.audit import AuditTrail
from gateway.auth import Authenticator, KeyCache
from gateway.clock import AlignedClock, Clock, SystemClock
from gateway.config import Settings, check_callback_secret
from gateway.delivery import DeliveryPolicy, Dispatcher
from gateway.errors import ConfigError, StoreError
from gateway.held import HeldCallers
from gateway.http import EXCEPTION_HANDLERS, JSONResponse
from gateway.jwt_auth import JwtVerifier
from gateway.logs import configure_logging
from gateway.ratelimit import ApiRateLimit, Limits, networks
from gateway.retention import Pruner, RetentionPolicy
from gateway.routes import (
    approval,
    audit,
    deliveries,
    docs,
    engine,
    forms,
    ops,
    public,
    tags,
    ui,
    webhook,
)
from gateway.scheduler import Scheduler
from gateway.services import Services, services
from gateway.signing import ResumeSigner
from gateway.ui_origin import SeparateUiOrigin, UiOrigin
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


def build_services(
    settings: Settings, store: Store, clock: Clock, http: httpx.AsyncClient
) -> Services:
    """Wire the gateway's collaborators together."""
    assert settings.callback_secret is not None, "call Settings.with_secret_keys() first"
    scheduler = Scheduler(
        store,
        clock,
        batch_size=settings.scheduler_batch_size,
        max_sleep_ms=int(settings.scheduler_max_sleep_seconds * 1000),
    )
    dispatcher = Dispatcher(
        store,
        clock,
        http,
        check_callback_secret(settings.callback_secret.reveal()),
        DeliveryPolicy(
            timeout_ms=int(settings.callback_timeout_seconds * 1000),
            max_age_ms=int(settings.callback_max_age_seconds * 1000),
            concurrency=settings.callback_concurrency,
            backoff_base_ms=int(settings.callback_backoff_base_seconds * 1000),
            backoff_max_ms=int(settings.callback_backoff_max_seconds * 1000),
            max_sleep_ms=int(settings.scheduler_max_sleep_seconds * 1000),
        ),
    )
    held = HeldCallers(store, clock)
    store.on_outbox(dispatcher.notify)
    store.on_deadline(scheduler.notify)
    store.on_held_answer(held.answered)
    return Services(
        settings=settings,
        store=store,
        clock=clock,
        signer=ResumeSigner(settings.secret_keys, settings.public_url),
        scheduler=scheduler,
        dispatcher=dispatcher,
        held=held,
        auth=Authenticator(KeyCache(store, clock), JwtVerifier.from_settings(settings)),
        audit=AuditTrail(store, clock),
        pruner=Pruner(store, clock, RetentionPolicy.from_settings(settings)),
        limits=limits_from(settings, clock),
    )


def limits_from(settings: Settings, clock: Clock) -> Limits:
    """The rate limits the settings ask for."""
    try:
        trusted = networks(settings.trusted_proxies)
    except ValueError as exc:
        raise ConfigError(f"WAITGATE_TRUSTED_PROXIES: {exc}") from None
    return Limits(
        clock,
        bad_signatures_per_ip=settings.rate_limit_bad_signatures,
        bad_signatures_per_execution=settings.rate_limit_bad_signatures_per_execution,
        api_per_ip=settings.rate_limit_api,
        trusted_proxies=trusted,
    )


@contextlib.asynccontextmanager
async def background(svc: Services) -> AsyncIterator[None]:
    """Run the scheduler and the dispatcher; stop them gracefully, then cancel stragglers."""
    stopping = asyncio.Event()
    tasks = [
        asyncio.create_task(svc.scheduler.run(), name="waitgate-scheduler"),
        asyncio.create_task(svc.dispatcher.run(), name="waitgate-dispatcher"),
        asyncio.create_task(svc.audit.run(), name="waitgate-audit"),
        asyncio.create_task(svc.pruner.run(), name="waitgate-pruner"),
    ]
    if isinstance(svc.clock, AlignedClock) and svc.settings.align_clock_to_database:
        tasks.append(
            asyncio.create_task(keep_aligned(svc, svc.clock, stopping), name="waitgate-clock")
        )
    try:
        yield
    finally:
        stopping.set()
        svc.scheduler.stop()
        svc.dispatcher.stop()
        svc.audit.stop()
        svc.pruner.stop()
        _, pending = await asyncio.wait(tasks, timeout=svc.settings.shutdown_timeout_seconds)
        for task in pending:
            log.warning(
                "%s did not stop in time", task.get_name(), extra={"action": "gateway.abort"}
            )
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def keep_aligned(svc: Services, clock: AlignedClock, stopping: asyncio.Event) -> None:
    """Re-measure the offset to the database's clock now and then (see docs/decisions.md)."""
    interval_ms = int(svc.settings.clock_align_interval_seconds * 1000)
    while not stopping.is_set():
        await clock.base.wait(stopping, interval_ms)
        try:
            await clock.align(svc.store.database_time)
        except StoreError as exc:
            log.warning(
                "could not read the database clock: %s", exc, extra={"action": "clock.error"}
            )


def create_app(
    settings: Settings, *, clock: Clock | None = None, store: Store | None = None
) -> Starlette:
    """The gateway app. Secrets missing from ``settings`` are generated into its data dir.

    Every instant comes from ``clock`` shifted by the measured offset to the database's own
    clock (PostgreSQL), so replicas agree on deadlines even when their clocks do not.
    """
    aligned = AlignedClock(clock or SystemClock())
    settings = settings.with_secret_keys()
    ui_origin = UiOrigin.parse(settings.ui_origin, settings.public_url)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        the_store = store or open_store(settings.database_url)
        await the_store.open()
        try:
            await the_store.migrate()
            if settings.align_clock_to_database:
                await aligned.align(the_store.database_time)
            async with httpx.AsyncClient() as http:
                app.state.services = build_services(settings, the_store, aligned, http)
                app.state.limits = app.state.services.limits
                async with background(app.state.services):
                    log.info("gateway started", extra={"action": "gateway.started"})
                    yield
        finally:
            await the_store.close()
            log.info("gateway stopped", extra={"action": "gateway.stopped"})

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        *docs.routes,
        *public.routes,
        *engine.routes,
        *tags.routes,
        *deliveries.routes,
        *audit.routes,
        *ops.routes,
        *webhook.routes,
        *approval.routes,
        *forms.routes,
        *ui.routes,
    ]
    return Starlette(
        routes=one_route_per_path(routes),
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            Middleware(AccessLog),
            Middleware(SeparateUiOrigin, origin=ui_origin),
            Middleware(AnswerPolicy),
            Middleware(ApiRateLimit),
        ],
    )


def one_route_per_path(routes: list[Route]) -> list[Route]:
    """Merge routes that share a path, so a wrong method gets 405 with every allowed method."""
    grouped: dict[str, list[Route]] = {}
    for route in routes:
        grouped.setdefault(route.path, []).append(route)
    merged = []
    for path, group in grouped.items():
        if len(group) == 1:
            merged.extend(group)
            continue
        endpoints = {m: r.endpoint for r in group for m in (r.methods or ())}

        async def dispatch(request: Request, endpoints: dict[str, Any] = endpoints) -> Response:
            response: Response = await endpoints[request.method](request)
            return response

        merged.append(Route(path, dispatch, methods=sorted(endpoints)))
    return merged


def app_from_env() -> Starlette:
    """Factory for uvicorn: settings from the environment (``waitgate serve`` uses this)."""
    settings = Settings.from_env().with_secret_keys()
    configure_logging(settings.log_level)
    return create_app(settings)
