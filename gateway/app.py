"""The Starlette app: factory, lifespan (store, migrations, scheduler) and routes."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from gateway import tracing
from gateway.audit import AuditTrail
from gateway.auth import Authenticator, KeyCache, jwt_verifier
from gateway.clock import AlignedClock, Clock, SystemClock
from gateway.config import Settings, callback_keys
from gateway.delivery import DeliveryPolicy, Dispatcher
from gateway.endpoints import Breaker
from gateway.errors import ConfigError
from gateway.front import Front
from gateway.gauges import DatabaseGauges
from gateway.held import HeldCallers
from gateway.http import EXCEPTION_HANDLERS, JSONResponse, error_response
from gateway.logs import configure_logging
from gateway.notify import Notifier
from gateway.origins import CallbackOrigins
from gateway.ratelimit import Limits, networks
from gateway.retention import Pruner, RetentionPolicy
from gateway.routes import (
    approval,
    audit,
    channels,
    deliveries,
    docs,
    endpoints,
    engine,
    event_sources,
    events,
    forms,
    inbox,
    ops,
    public,
    slack,
    tags,
    ui,
    ui_events,
    ui_overview,
    webhook,
)
from gateway.routing import SegmentRouter, one_route_per_path
from gateway.scheduler import Scheduler
from gateway.services import Services, services
from gateway.signing import ResumeSigner
from gateway.supervisor import Loop, Supervisor
from gateway.ui_origin import UiOrigin
from persistence import open_store
from persistence.base import Store

log = logging.getLogger("waitgate.app")


async def healthz(request: Request) -> Response:
    """The process is alive."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """The database answers, its schema is current, and every background task is alive.

    The reason given is a fixed phrase; the details (driver messages can name hosts, users
    and files) go to the log only.
    """
    svc = services(request)
    dead = svc.supervisor.dead()
    if dead:
        return _unavailable(f"background task stopped: {', '.join(dead)}")
    try:
        await svc.store.ping()
        pending = await svc.store.pending_migrations()
    except Exception as exc:
        log.warning(
            "readiness check failed: %s: %s",
            type(exc).__name__,
            exc,
            extra={"action": "readyz.unavailable"},
        )
        return _unavailable("database unavailable")
    if pending:
        return _unavailable(f"migrations pending: {pending}")
    return JSONResponse({"status": "ok"})


def _unavailable(reason: str) -> Response:
    return error_response(503, reason, status="unavailable", reason=reason)


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
    signer = ResumeSigner(settings.secret_keys, settings.public_url)
    origins = CallbackOrigins.from_settings(settings)
    dispatcher = Dispatcher(
        store,
        clock,
        http,
        callback_keys(settings.callback_secret.reveal()),
        DeliveryPolicy(
            timeout_ms=int(settings.callback_timeout_seconds * 1000),
            max_age_ms=int(settings.callback_max_age_seconds * 1000),
            concurrency=settings.callback_concurrency,
            backoff_base_ms=int(settings.callback_backoff_base_seconds * 1000),
            backoff_max_ms=int(settings.callback_backoff_max_seconds * 1000),
            max_sleep_ms=int(settings.scheduler_max_sleep_seconds * 1000),
            endpoint_concurrency=settings.endpoint_concurrency,
            endpoint_rate=settings.endpoint_rate_limit,
            breaker=Breaker(
                threshold=settings.endpoint_failure_threshold,
                cooldown_ms=int(settings.endpoint_cooldown_seconds * 1000),
            ),
        ),
        origins,
        notifier=Notifier(store, signer, origins, http),
        operations_url=settings.operations_url,
    )
    audit_trail = AuditTrail(store, clock)
    pruner = Pruner(store, clock, RetentionPolicy.from_settings(settings))
    loops: list[Loop] = [scheduler, dispatcher, audit_trail, pruner]
    if isinstance(clock, AlignedClock) and settings.align_clock_to_database:
        loops.append(
            ClockAlignment(clock, store, int(settings.clock_align_interval_seconds * 1000))
        )
    held = HeldCallers(store, clock)
    store.on_outbox(dispatcher.notify)
    store.on_deadline(scheduler.notify)
    store.on_held_answer(held.answered)
    return Services(
        settings=settings,
        store=store,
        clock=clock,
        signer=signer,
        scheduler=scheduler,
        dispatcher=dispatcher,
        held=held,
        auth=Authenticator(KeyCache(store, clock), jwt_verifier(settings)),
        audit=audit_trail,
        pruner=pruner,
        limits=limits_from(settings, clock),
        gauges=DatabaseGauges(store, clock),
        supervisor=Supervisor(clock, loops),
    )


def limits_from(settings: Settings, clock: Clock) -> Limits:
    """The rate limits the settings ask for."""
    return Limits(
        clock,
        bad_signatures_per_ip=settings.rate_limit_bad_signatures,
        bad_signatures_per_execution=settings.rate_limit_bad_signatures_per_execution,
        api_per_ip=settings.rate_limit_api,
    )


def trusted_proxies(settings: Settings) -> list[Middleware]:
    """The middleware that puts the address a trusted proxy forwarded (``X-Forwarded-For``)
    and its scheme (``X-Forwarded-Proto``) in place of the proxy's, before anything reads them;
    none when no proxy is trusted."""
    try:
        trusted = networks(settings.trusted_proxies)
    except ValueError as exc:
        raise ConfigError(f"WAITGATE_TRUSTED_PROXIES: {exc}") from None
    if not trusted:
        return []
    return [Middleware(ProxyHeadersMiddleware, trusted_hosts=[str(n) for n in trusted])]


@contextlib.asynccontextmanager
async def background(svc: Services) -> AsyncIterator[None]:
    """Run every background loop under the supervisor; stop them gracefully, within the
    shutdown timeout, then cancel stragglers."""
    svc.supervisor.start()
    try:
        yield
    finally:
        await svc.supervisor.stop(svc.settings.shutdown_timeout_seconds)


class ClockAlignment(Loop):
    """Re-measures the offset to the database's clock now and then (see docs/decisions.md)."""

    name = "clock"

    def __init__(
        self,
        clock: AlignedClock,
        store: Store,
        interval_ms: int,
    ) -> None:
        super().__init__()
        self._clock = clock
        self._store = store
        self._interval_ms = interval_ms
        self._first = True

    async def step(self) -> int:
        """Align (except on the first step: the lifespan has just aligned), then pause."""
        if not self._first:
            await self._clock.align(self._store.database_time)
        self._first = False
        return self._interval_ms


class GatewayApp(Starlette):
    """Starlette with the gateway's ``front`` middlewares outside its own stack (its error
    middleware, exception handlers and router), so that ``gateway.front.Front`` can send resume
    URLs straight to their endpoint."""

    def __init__(self, *, front: list[Middleware], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.front = front

    def build_middleware_stack(self) -> ASGIApp:
        """The front middlewares (outermost first) around Starlette's stack."""
        app = super().build_middleware_stack()
        for cls, args, kwargs in reversed(self.front):
            app = cls(app, *args, **kwargs)
        return app


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    store: Store | None = None,
    freeze_after_start: bool = False,
) -> GatewayApp:
    """The gateway app. Secrets missing from ``settings`` are generated into its data dir.

    With ``freeze_after_start`` (a served process), what start-up made (modules, settings,
    services) is moved out of the garbage collector's sight once started (``gc.freeze``): it
    lives as long as the process, and scanning it again at every full collection would pause
    requests for milliseconds.

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
            if settings.callback_allowed_hosts:
                log.warning(
                    "WAITGATE_CALLBACK_ALLOWED_HOSTS is deprecated: it allows only https://host "
                    "and http://host on their default ports; list origins in "
                    "WAITGATE_CALLBACK_ALLOWED_ORIGINS instead",
                    extra={"action": "config.deprecated"},
                )
            async with httpx.AsyncClient() as http:
                app.state.services = build_services(settings, the_store, aligned, http)
                app.state.limits = app.state.services.limits
                async with background(app.state.services):
                    if freeze_after_start:
                        gc.freeze()
                    log.info("gateway started", extra={"action": "gateway.started"})
                    yield
        finally:
            await the_store.close()
            log.info("gateway stopped", extra={"action": "gateway.stopped"})

    routes = [
        *webhook.routes,  # first: the router tries routes in order, and resumes are the most
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        *docs.routes,
        *public.routes,
        *engine.routes,
        *tags.routes,
        *deliveries.routes,
        *endpoints.routes,
        *audit.routes,
        *ops.routes,
        *approval.routes,
        *inbox.routes,
        *forms.routes,
        *channels.routes,
        *slack.routes,
        *event_sources.routes,
        *events.routes,
        *ui.routes,
        *ui_events.routes,
        *ui_overview.routes,
    ]
    app = GatewayApp(
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
        front=[
            *trusted_proxies(settings),
            *tracing.middleware(),
            Middleware(Front, resume=webhook.resume_endpoint, ui_origin=ui_origin),
        ],
    )
    app.router = SegmentRouter(one_route_per_path(routes), lifespan=lifespan)
    return app


def app_from_env() -> GatewayApp:
    """Factory for uvicorn: settings from the environment (``waitgate serve`` uses this)."""
    settings = Settings.from_env().with_secret_keys()
    configure_logging(settings.log_level)
    tracing.configure_from_env()
    return create_app(settings, freeze_after_start=True)
