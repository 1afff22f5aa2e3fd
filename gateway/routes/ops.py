"""Operations: ``/metrics`` for Prometheus."""

from __future__ import annotations

import secrets

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import metrics
from gateway.http import ApiError
from gateway.services import services


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics`` in the Prometheus text format; database gauges are read now.

    With ``WAITGATE_METRICS_TOKEN`` set, only ``Authorization: Bearer <token>`` gets them.
    """
    svc = services(request)
    token = svc.settings.metrics_token
    if token is not None and not _bearer_matches(request, token.reveal()):
        raise ApiError(401, "Unauthorized", headers={"WWW-Authenticate": "Bearer"})
    counts = await svc.store.count_by_status()
    for status in metrics.STATUSES:
        metrics.EXECUTIONS.labels(status).set(counts.get(status, 0))
    metrics.OVERDUE.set(await svc.store.count_overdue(svc.clock.now_ms()))
    endpoints = await svc.store.count_endpoints_by_state()
    for state in metrics.ENDPOINT_STATES:
        metrics.ENDPOINTS.labels(state).set(endpoints.get(state, 0))
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def _bearer_matches(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(
        given.strip().encode(), token.encode()
    )


routes = [Route("/metrics", metrics_endpoint, methods=["GET"])]
