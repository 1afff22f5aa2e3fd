"""How routes are declared: the scope each API operation needs, and one route per path.

An API endpoint is declared with ``scoped(path, endpoint, methods, scope=…)``: the caller is
authenticated for that scope (n8n's 401/403 answers) before the endpoint runs, and handed to
it. The scope stays readable on the route, so a test can walk the routing table and prove that
every ``/api/v1`` operation needs one; ``one_route_per_path`` keeps each method's endpoint.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette._utils import get_route_path
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import Receive, Send
from starlette.types import Scope as AsgiScope

from gateway.auth import Principal, Scope
from gateway.services import services

Endpoint = Callable[[Request], Awaitable[Response]]
ScopedEndpoint = Callable[[Request, Principal], Awaitable[Response]]


@dataclass(frozen=True)
class Scoped:
    """An endpoint that needs ``scope``: the caller is authenticated first, then handed over."""

    scope: Scope
    endpoint: ScopedEndpoint

    async def __call__(self, request: Request) -> Response:
        """Authenticate (401/403 otherwise), then run the endpoint for the caller."""
        principal = await services(request).auth.authenticate(request, self.scope)
        return await self.endpoint(request, principal)


def scoped(path: str, endpoint: ScopedEndpoint, methods: list[str], *, scope: Scope) -> Route:
    """A route whose callers need ``scope``."""
    return Route(path, Scoped(scope, endpoint).__call__, methods=methods)


def required_scope(endpoint: Endpoint) -> Scope | None:
    """The scope an endpoint declared with ``scoped`` needs; ``None`` for any other."""
    owner = getattr(endpoint, "__self__", None)
    return owner.scope if isinstance(owner, Scoped) else None


class PathRoute(Route):
    """The routes of one path merged, so a wrong method gets 405 with every allowed method;
    each method keeps its own endpoint (``endpoints``)."""

    def __init__(self, path: str, endpoints: dict[str, Endpoint]) -> None:
        self.endpoints = endpoints
        super().__init__(path, self._dispatch, methods=sorted(endpoints))

    async def _dispatch(self, request: Request) -> Response:
        return await self.endpoints[request.method](request)


def one_route_per_path(routes: list[Route]) -> list[Route]:
    """Merge routes that share a path (see ``PathRoute``)."""
    grouped: dict[str, list[Route]] = {}
    for route in routes:
        grouped.setdefault(route.path, []).append(route)
    return [
        group[0]
        if len(group) == 1
        else PathRoute(path, {m: r.endpoint for r in group for m in (r.methods or ())})
        for path, group in grouped.items()
    ]


def endpoints_by_method(route: BaseRoute) -> dict[str, Endpoint]:
    """What answers each method of a route (``HEAD`` is answered like ``GET``)."""
    if isinstance(route, PathRoute):
        return dict(route.endpoints)
    if isinstance(route, Route):
        return {method: route.endpoint for method in route.methods or ()}
    return {}


class SegmentRouter(Router):
    """Starlette's router, trying for each request only the routes that can match its first
    path segment (a route whose path starts with a fixed segment matches nothing else), in
    their declared order, and of those only the ones whose fixed beginning (the path up to its
    first parameter) and fixed end (after its last one) the path has. The first full match is
    the one Starlette's own loop would find; anything without a full match (405, redirects,
    404, lifespan) is left to Starlette."""

    def _candidates(self, path: str) -> list[tuple[str, str, BaseRoute]]:
        if getattr(self, "_indexed", None) != len(self.routes):
            index: dict[str, list[tuple[str, str, BaseRoute]]] = {}
            anywhere: list[tuple[str, str, BaseRoute]] = []
            for route in self.routes:
                fixed = route.path.partition("{")[0] if isinstance(route, Route) else ""
                end = route.path.rpartition("}")[2] if isinstance(route, Route) else ""
                first = route.path.split("/")[1] if isinstance(route, Route) else "{"
                entry = (fixed, end, route)
                if "{" in first:
                    anywhere.append(entry)
                    for routes in index.values():
                        routes.append(entry)
                else:
                    index.setdefault(first, [*anywhere]).append(entry)
            self._index, self._anywhere, self._indexed = index, anywhere, len(self.routes)
        return self._index.get(
            path.split("/", 2)[1] if path.startswith("/") else "", self._anywhere
        )

    def full_match(self, scope: AsgiScope) -> tuple[BaseRoute, AsgiScope] | None:
        """The first route that fully matches an HTTP request, and what it adds to its scope."""
        path = get_route_path(scope)
        for fixed, end, route in self._candidates(path):
            if path.startswith(fixed) and path.endswith(end):
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    return route, child_scope
        return None

    async def app(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        """Dispatch to the first route that fully matches, else as Starlette does."""
        found = self.full_match(scope) if scope["type"] == "http" else None
        if found is None:
            await super().app(scope, receive, send)
            return
        route, child_scope = found
        scope.setdefault("router", self)
        scope["route"] = route
        scope.update(child_scope)
        await route.handle(scope, receive, send)
