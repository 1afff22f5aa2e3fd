"""One error shape everywhere (``{message, code, hint?}``), and the hints a new user needs: the
method a resume URL expects, an API key sent as a Bearer token, a ``waitTill`` in the past."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gateway.auth import API_KEY_HEADER
from gateway.clock import ManualClock
from gateway.config import Settings
from gateway.domain import format_instant
from gateway.errors import StoreUnavailable
from gateway.routes.docs import openapi_document
from gateway.services import Services
from tests.conftest import create, make_key, park, running_gateway

ERROR_FIELDS = {"message", "code", "hint", "error"}


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """The answer is ``status`` in the one error shape; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert isinstance(body["message"], str)
    assert body["message"]
    assert body["code"] == status
    assert isinstance(body.get("hint", ""), str)
    return body


async def test_every_kind_of_error_answer_has_the_one_shape(
    app: Starlette,
    svc: Services,
    client: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    execution = await create(client)
    read_only = await make_key(svc, "execution:read")
    answers = {
        "404 route": (await anon.get("/no/such/route"), 404),
        "405": (await client.delete("/api/v1/openapi.json"), 405),
        "400 body": (await client.post("/api/v1/executions", content=b"{"), 400),
        "401": (await anon.get("/api/v1/executions"), 401),
        "403": (
            await anon.post(
                f"/api/v1/executions/{execution['id']}/stop", headers={API_KEY_HEADER: read_only}
            ),
            403,
        ),
        "409": (
            await client.post(f"/api/v1/executions/{execution['id']}/resume", json={}),
            409,
        ),
        "413": (
            await client.post("/api/v1/executions", content=b"x" * (64 * 1024 + 1)),
            413,
        ),
        "401 resume URL": (await anon.get(f"/webhook-waiting/{execution['id']}?signature=x"), 401),
    }
    for name, (response, status) in answers.items():
        body = assert_error(response, status)
        assert set(body) <= ERROR_FIELDS, name
    signed = answers["401 resume URL"][0].json()
    assert signed["error"] == "Invalid token"  # n8n's extra field is kept

    async def unavailable(*args: Any) -> Any:
        raise StoreUnavailable("gone")

    monkeypatch.setattr(svc.store, "create_execution", unavailable)
    assert_error(await client.post("/api/v1/executions", json={"workflowId": "w"}), 503)


async def test_a_rate_limited_answer_has_the_one_shape(
    settings: Settings, clock: ManualClock
) -> None:
    limited = dataclasses.replace(settings, rate_limit_api=1)
    async with running_gateway(limited, clock) as (_app, client):
        await client.get("/api/v1/executions")
        response = await client.get("/api/v1/executions")
        assert_error(response, 429)
        assert response.headers["retry-after"]


def test_every_json_error_answer_in_the_document_is_the_shared_schema() -> None:
    document = openapi_document()
    shared = document["components"]["schemas"]["error"]
    assert set(shared["required"]) == {"message", "code"}
    assert {"message", "code", "hint"} <= set(shared["properties"])
    named = document["components"]["responses"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, given in operation["responses"].items():
                if not status.isdigit() or int(status) < 400:  # default: the wait's answer
                    continue
                answer = named[given["$ref"].rsplit("/", 1)[1]] if "$ref" in given else given
                schema = answer["content"].get("application/json", {}).get("schema")
                if schema is None:
                    assert set(answer["content"]) == {"text/html"}, (method, path, status)
                    continue
                refs = [schema.get("$ref")] + [s.get("$ref") for s in schema.get("allOf", [])]
                assert "#/components/schemas/error" in refs, (method, path, status)


async def test_a_call_in_another_method_keeps_n8ns_404_and_hints_the_method(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    execution = await create(client)
    wait = await park(client, execution["id"], webhook={"httpMethod": "POST"})
    response = await anon.get(wait["resumeUrl"])  # no text/html: no confirmation page
    body = assert_error(response, 404)
    assert body["message"] == (
        f'The workflow for execution "{execution["id"]}" does not contain a waiting webhook '
        "with a matching path/method."
    )
    assert body["hint"] == "This wait resumes on POST, without a path suffix."
    both = await park(
        client,
        (await create(client))["id"],
        webhook={"httpMethod": ["PUT", "PATCH"], "suffix": "paid"},
    )
    response = await anon.post(both["resumeUrl"])
    assert assert_error(response, 404)["hint"] == (
        "This wait resumes on PUT or PATCH, with the path suffix /paid."
    )


async def test_an_api_key_sent_as_bearer_is_told_where_it_goes(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, admin_key: str
) -> None:
    response = await anon.get(
        "/api/v1/executions", headers={"Authorization": f"Bearer {admin_key}"}
    )
    body = assert_error(response, 401)
    assert body["message"] == "Unauthorized"
    assert "X-N8N-API-KEY" in body["hint"]
    other = await anon.get("/api/v1/executions", headers={"Authorization": "Bearer abc"})
    assert "JWTs are not configured" in assert_error(other, 401)["hint"]


async def test_a_wait_till_in_the_past_is_accepted_with_a_warning(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    execution = await create(client)
    past = format_instant(clock.now_ms() - 60_000)
    response = await client.post(
        f"/api/v1/executions/{execution['id']}/wait", json={"waitTill": past}
    )
    assert response.status_code == 200
    assert response.json()["warnings"] == [
        f"waitTill {past} is in the past; the wait resumes at once"
    ]
    later = format_instant(clock.now_ms() + 60_000)
    second = await create(client)
    future = await client.post(f"/api/v1/executions/{second['id']}/wait", json={"waitTill": later})
    assert future.status_code == 200
    assert "warnings" not in future.json()
