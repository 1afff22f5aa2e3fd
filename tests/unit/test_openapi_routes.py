"""The OpenAPI document describes exactly the routes the app serves (schemathesis, the served
forms and n8n compatibility are tested in ``tests/api/test_openapi.py``)."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.app import create_app
from gateway.config import Secret, Settings
from gateway.routes.docs import openapi_document


def test_the_document_lists_every_route_the_app_serves(tmp_path: Path) -> None:
    app = create_app(Settings(secret_keys=(Secret("k" * 32),), data_dir=tmp_path))
    served = {
        (method.lower(), re.sub(r"{(\w+):int}", r"{\1}", route.path))  # type: ignore[attr-defined]
        for route in app.routes
        for method in (route.methods or ())  # type: ignore[attr-defined]
        if method != "HEAD" or route.path.startswith("/webhook")  # type: ignore[attr-defined]
    }
    documented = {
        (method, path.replace("{suffix}", "{suffix:path}"))
        for path, item in openapi_document()["paths"].items()
        for method in item
    }
    about_itself = {
        ("get", "/api/v1/openapi.json"),
        ("get", "/api/v1/openapi.yml"),
        ("get", "/api/v1/docs/assets/{name}"),
    }
    dashboard = {(m, p) for m, p in served if p.startswith("/ui")}  # pages for people
    assert dashboard
    assert served - about_itself - dashboard - {("get", "/api/v1/docs")} == documented
