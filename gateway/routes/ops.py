"""Operations: ``/metrics`` for Prometheus."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import metrics
from gateway.services import services


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics`` in the Prometheus text format; database gauges are read now."""
    svc = services(request)
    counts = await svc.store.count_by_status()
    for status in metrics.STATUSES:
        metrics.EXECUTIONS.labels(status).set(counts.get(status, 0))
    metrics.OVERDUE.set(await svc.store.count_overdue(svc.clock.now_ms()))
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


routes = [Route("/metrics", metrics_endpoint, methods=["GET"])]
