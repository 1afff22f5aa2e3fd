"""The OpenAPI document (YAML and JSON), the API reference page, and the home page that points
people to it and to the dashboard.

The reference is Swagger UI (request bodies, parameters, examples, try-it), whose assets come
from the ``swagger-ui-py`` package and are served by the gateway itself under
``/api/v1/docs/assets/``: nothing is loaded from elsewhere, and the page's CSP allows scripts,
styles and calls of its own origin only. Without JavaScript the page lists every operation,
rendered on the server.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.errors import ConfigError
from gateway.http import ApiError
from gateway.pages import HEADERS, page, render
from gateway.services import services

METHODS = ("get", "post", "put", "patch", "delete", "head", "options")
ASSETS_PATH = "docs/assets"
"""Where the page's assets are, relative to the page (``/api/v1/docs``)."""
VIEWER_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")
OWN_ASSETS = ("docs.js", "docs.css")
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
}
DOCS_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
"""The page's CSP: Swagger UI's scripts and styles, and try-it calls, from this origin only."""
ASSET_HEADERS = {
    "cache-control": "public, max-age=31536000, immutable",
    "x-content-type-options": "nosniff",
}
"""Assets are named with their digest by the page (``?v=``), so they may be kept for a year."""


@dataclass(frozen=True)
class Asset:
    """A file of the page: its bytes, type and the digest the page names it with."""

    body: bytes
    media_type: str
    digest: str


def _viewer_folder() -> Path:
    """Swagger UI's files, as the ``swagger-ui-py`` package ships them (not imported: only its
    static folder is used)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the swagger-ui-py package is missing; reinstall waitgate")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@cache
def assets() -> dict[str, Asset]:
    """Every asset the page uses, by name, read once."""
    viewer = _viewer_folder()
    own = resources.files("gateway").joinpath("static")
    files = {name: (viewer / name).read_bytes() for name in VIEWER_ASSETS}
    files |= {name: own.joinpath(name).read_bytes() for name in OWN_ASSETS}
    return {
        name: Asset(body, MEDIA_TYPES[Path(name).suffix], hashlib.sha256(body).hexdigest()[:16])
        for name, body in files.items()
    }


@cache
def openapi_text() -> str:
    """The document as shipped (``gateway/openapi.yml``)."""
    return resources.files("gateway").joinpath("openapi.yml").read_text()


@cache
def _parsed() -> dict[str, Any]:
    """The document, parsed once. PyYAML is imported here, at the first request for the JSON
    document or the reference page (or a test that reads it), not at start."""
    import yaml  # noqa: PLC0415

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


@cache
def _page() -> str:
    document = _parsed()
    urls = {name: f"{ASSETS_PATH}/{name}?v={asset.digest}" for name, asset in assets().items()}
    return render("docs.html", info=document["info"], groups=_groups(document), assets=urls)


async def docs_page(request: Request) -> Response:
    """``GET /api/v1/docs``: the API reference (Swagger UI; every operation listed on the
    server for a browser without JavaScript)."""
    headers = {**HEADERS, "content-security-policy": DOCS_POLICY}
    return Response(_page(), media_type="text/html; charset=utf-8", headers=headers)


async def docs_asset(request: Request) -> Response:
    """``GET /api/v1/docs/assets/{name}``: a file of the page, kept by browsers for a year."""
    asset = assets().get(request.path_params["name"])
    if asset is None:
        raise ApiError(404, "Not Found")
    return Response(asset.body, media_type=asset.media_type, headers=ASSET_HEADERS)


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
    Route("/api/v1/docs/assets/{name}", docs_asset, methods=["GET"]),
]
