"""Operations: ``/metrics`` for Prometheus."""

from __future__ import annotations

import secrets

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.http import ApiError
from gateway.services import services


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics`` in the Prometheus text format; the database's gauges are at most a
    second old (``gateway.gauges``).

    With ``WAITGATE_METRICS_TOKEN`` set, only ``Authorization: Bearer <token>`` gets them.
    """
    svc = services(request)
    token = svc.settings.metrics_token
    if token is not None and not _bearer_matches(request, token.reveal()):
        raise ApiError(401, "Unauthorized", headers={"WWW-Authenticate": "Bearer"})
    await svc.gauges.refresh()
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def _bearer_matches(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(
        given.strip().encode(), token.encode()
    )


routes = [Route("/metrics", metrics_endpoint, methods=["GET"])]
