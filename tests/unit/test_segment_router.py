"""The segment router picks, for every path of the app, the route Starlette's loop would."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from gateway.app import create_app
from gateway.config import Secret, Settings
from gateway.routing import SegmentRouter


def _first_full(routes: list[BaseRoute], scope: Scope) -> BaseRoute | None:
    for route in routes:
        if route.matches(scope)[0] is Match.FULL:
            return route
    return None


def test_every_path_and_method_goes_where_starlette_would_send_it(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'w.db'}",
        public_url="http://testserver",
        secret_keys=(Secret("k" * 40),),
        data_dir=tmp_path,
    )
    router = create_app(settings).router
    assert isinstance(router, SegmentRouter)
    routes = list(router.routes)
    paths = {re.sub(r"\{[^}]+\}", "1", r.path) for r in routes if isinstance(r, Route)}
    paths |= {"/", "/nope", "/api/v1/nope", "/webhook-waiting/1/a/b", "/ui/", "/api/v1/", "/api"}
    paths |= {p + "/" for p in paths} | {p + "/x" for p in paths}
    checked = 0
    for path in paths:
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            scope: Scope = {"type": "http", "path": path, "root_path": "", "method": method}
            found = router.full_match(scope)
            chosen = None if found is None else found[0]
            assert chosen is _first_full(routes, scope), (method, path)
            checked += 1
    assert checked > 200


async def test_a_wrong_method_is_still_405_with_its_allowed_methods(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'w.db'}",
        public_url="http://testserver",
        secret_keys=(Secret("k" * 40),),
        data_dir=tmp_path,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            assert (await http.delete("/healthz")).status_code == 405
            assert (await http.get("/no/such/page")).status_code == 404
            assert (await http.get("/healthz")).status_code == 200
