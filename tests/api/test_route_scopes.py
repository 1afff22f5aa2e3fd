"""Every ``/api/v1`` operation needs a scope: proved by walking the app's routing table.

The table is the one the app serves (after ``one_route_per_path`` merged the routes of each
path), so an operation added without ``scoped(…)`` fails here, whichever module declares it.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.auth import SCOPES, Scope
from gateway.config import Secret, Settings
from gateway.routing import endpoints_by_method, required_scope
from gateway.services import Services
from tests.api.test_auth import FORBIDDEN, HEADER_REQUIRED, ROUTES, call, key_header
from tests.conftest import make_key

PUBLIC = {
    (path, method)
    for path in (
        "/api/v1/openapi.yml",
        "/api/v1/openapi.json",
        "/api/v1/docs",
        "/api/v1/docs/assets/{name}",
    )
    for method in ("GET", "HEAD")
}
"""The OpenAPI document and its reference page with the page's assets: public by design,
like n8n's."""
PATH_PARAMS = {"id:int": "999", "id": "nope", "key": "k", "name": "nope"}
"""A value for each path parameter (the ones ``tests/api/test_auth.py`` uses)."""

Operations = dict[tuple[str, str], Scope | None]


def operations(app: Starlette) -> Operations:
    """``(path, method) -> the scope it needs`` for every ``/api/v1`` operation the app serves."""
    found: Operations = {}
    for route in app.routes:
        path = str(getattr(route, "path", ""))
        if path.startswith("/api/v1"):
            for method, endpoint in endpoints_by_method(route).items():
                found[(path, method)] = required_scope(endpoint)
    return found


def concrete(path: str) -> str:
    """A path template with a value for each parameter."""
    return re.sub(r"\{([^}]+)\}", lambda m: PATH_PARAMS[m.group(1)], path)


SERVED = operations(
    create_app(
        Settings(
            secret_keys=(Secret("route-scope-test-key-of-at-least-32-chars"),),
            callback_secret=Secret("whsec_" + "A" * 44),
            data_dir=Path("unused"),
        )
    )
)
SCOPED = sorted((path, method, scope) for (path, method), scope in SERVED.items() if scope)


def test_every_api_operation_but_the_documentation_declares_a_scope() -> None:
    assert len(SERVED) > 30
    assert {operation for operation, scope in SERVED.items() if scope is None} == PUBLIC


def test_the_declared_scopes_are_the_ones_the_auth_tests_expect() -> None:
    declared = {(method, concrete(path)): scope for path, method, scope in SCOPED}
    for method, path, scope in ROUTES:
        assert declared[(method, path)] == scope, (method, path)


@pytest.mark.parametrize(
    ("path", "method", "scope"), SCOPED, ids=[f"{m} {p}" for p, m, _ in SCOPED]
)
async def test_every_scoped_operation_refuses_callers_without_its_scope(
    anon: httpx.AsyncClient, svc: Services, path: str, method: str, scope: Scope
) -> None:
    url = concrete(path)
    missing = await call(anon, method, url, {})
    assert missing.status_code == 401
    without = await make_key(svc, *[s for s in SCOPES if s not in {scope, Scope.ADMIN}])
    refused = await call(anon, method, url, key_header(without))
    assert refused.status_code == 403
    if method != "HEAD":
        assert (missing.json(), refused.json()) == (HEADER_REQUIRED, FORBIDDEN)
    only = await make_key(svc, scope)
    allowed = await call(anon, method, url, key_header(only))
    assert allowed.status_code not in {401, 403}, allowed.text


@pytest.mark.parametrize(("path", "method"), sorted(PUBLIC))
async def test_the_documentation_is_public(anon: httpx.AsyncClient, path: str, method: str) -> None:
    url = path.replace("{name}", "docs.js")
    assert (await anon.request(method, url)).status_code == 200
