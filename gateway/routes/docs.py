"""The OpenAPI document (YAML and JSON), a readable page of every operation, and the home page
that points people to it and to the dashboard."""

from __future__ import annotations

import copy
from functools import cache
from importlib import resources
from typing import Any

import msgspec
import yaml
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.pages import page
from gateway.services import services

METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


@cache
def openapi_text() -> str:
    """The document as shipped (``gateway/openapi.yml``)."""
    return resources.files("gateway").joinpath("openapi.yml").read_text()


@cache
def _parsed() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(openapi_text())
    return document


@cache
def _as_json() -> bytes:
    return msgspec.json.encode(_parsed())


def openapi_document() -> dict[str, Any]:
    """The document, parsed; a copy of its own for each caller, which may change it at will."""
    return copy.deepcopy(_parsed())


def _groups(document: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    groups: dict[str, list[dict[str, Any]]] = {t["name"]: [] for t in document.get("tags", [])}
    for path, item in document["paths"].items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            groups.setdefault(operation["tags"][0], []).append(
                {
                    "id": operation["operationId"],
                    "method": method,
                    "path": path,
                    "summary": operation["summary"],
                    "description": operation.get("description", ""),
                    "codes": sorted(operation["responses"]),
                }
            )
    return [(tag, ops) for tag, ops in groups.items() if ops]


async def openapi_yaml(request: Request) -> Response:
    """``GET /api/v1/openapi.yml``."""
    return Response(openapi_text(), media_type="application/yaml")


async def openapi_json(request: Request) -> Response:
    """``GET /api/v1/openapi.json``."""
    return Response(_as_json(), media_type="application/json")


async def docs_page(request: Request) -> Response:
    """``GET /api/v1/docs``: every operation, grouped, rendered on the server."""
    document = _parsed()
    return page("docs.html", info=document["info"], groups=_groups(document))


async def home(request: Request) -> Response:
    """``GET /`` (and HEAD): a small page linking to ``/ui`` (on ``WAITGATE_UI_ORIGIN`` when
    the dashboard has its own) and ``/api/v1/docs``; links relative to the page otherwise, so a
    proxy's path prefix is kept."""
    ui_origin = services(request).settings.ui_origin
    return page("home.html", title="waitgate", dashboard=f"{ui_origin}/ui" if ui_origin else "ui")


routes = [
    Route("/", home, methods=["GET"]),
    Route("/api/v1/openapi.yml", openapi_yaml, methods=["GET"]),
    Route("/api/v1/openapi.json", openapi_json, methods=["GET"]),
    Route("/api/v1/docs", docs_page, methods=["GET"]),
]
