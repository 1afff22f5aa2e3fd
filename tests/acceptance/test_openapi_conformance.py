"""schemathesis against a real ``waitgate serve``: no 5xx, every answer matches the document."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi import checks

from gateway.routes.docs import openapi_document
from tests.process import GatewayProcess

pytestmark = pytest.mark.acceptance
schema = schemathesis.openapi.from_dict(openapi_document())


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A gateway with a few executions in every state, and its admin key."""
    gateway = GatewayProcess(
        tmp_path_factory.mktemp("schemathesis"), {"WAITGATE_LOG_LEVEL": "warning"}
    )
    gateway.start()
    (key,) = gateway.admin_keys()
    with httpx.Client(base_url=gateway.url, headers={"X-N8N-API-KEY": key}) as http:
        for n in range(6):
            eid = http.post("/api/v1/executions", json={"workflowId": f"wf{n}"}).json()["id"]
            if n % 3 == 1:
                http.post(f"/api/v1/executions/{eid}/wait", json={"webhook": {}})
            if n % 3 == 2:
                http.post(f"/api/v1/executions/{eid}/finish", json={"status": "error"})
        http.post("/api/v1/tags", json={"name": "seed"})
    yield gateway.url, key
    gateway.kill()


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_operation_conforms(case: schemathesis.Case[Any], live: tuple[str, str]) -> None:
    url, key = live
    case.call_and_validate(
        base_url=url,
        headers={"X-N8N-API-KEY": key},
        # Business rules (a running execution cannot be deleted, a callback host must be
        # allowed, ...) refuse some schema-valid requests, and lenient parsing accepts some
        # schema-invalid ones: what matters here is no 5xx and answers that match the document.
        excluded_checks=[checks.positive_data_acceptance, checks.negative_data_rejection],
    )


def test_the_document_is_served_as_yaml_json_and_a_page(live: tuple[str, str]) -> None:
    url, _ = live
    as_json = httpx.get(f"{url}/api/v1/openapi.json").json()
    assert as_json == openapi_document()
    as_yaml = httpx.get(f"{url}/api/v1/openapi.yml")
    assert as_yaml.headers["content-type"].startswith("application/yaml")
    page = httpx.get(f"{url}/api/v1/docs")
    assert page.headers["content-type"].startswith("text/html")
    for operation_id in (
        op["operationId"]
        for item in as_json["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and "operationId" in op
    ):
        assert f'id="{operation_id}"' in page.text


def test_the_document_lists_every_route_the_app_serves() -> None:
    from gateway.app import create_app
    from gateway.config import Secret, Settings

    app = create_app(Settings(secret_keys=(Secret("k"),), data_dir=Path("/nonexistent")))
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
    about_itself = {("get", "/api/v1/openapi.json"), ("get", "/api/v1/openapi.yml")}
    assert served - about_itself - {("get", "/api/v1/docs")} == documented
