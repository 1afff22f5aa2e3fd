"""The engine API: create, park, finish, resume, customData; every bad input is a clear 4xx."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.clock import ManualClock
from gateway.services import Services
from tests.conftest import create, fire_timers, get, make_key, park


def message(response: httpx.Response) -> str:
    body: dict[str, Any] = response.json()
    return str(body["message"])


async def test_create_answers_the_execution_with_a_resume_url(client: httpx.AsyncClient) -> None:
    execution = await create(client, mode="webhook", customData={"order": "A-1"}, data={"x": 1})
    assert execution["workflowId"] == "wf-1"
    assert execution["mode"] == "webhook"
    assert execution["status"] == "running"
    assert execution["finished"] is False
    assert execution["customData"] == {"order": "A-1"}
    assert execution["startedAt"] == "2026-01-01T00:00:00.000Z"
    assert execution["stoppedAt"] is None
    assert execution["waitTill"] is None
    assert execution["resumeUrl"].startswith(
        f"http://127.0.0.1:5678/webhook-waiting/{execution['id']}?signature=1."
    )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "workflowId"),
        ({"workflowId": 5}, "Expected `str`, got `int`"),
        ({"workflowId": "w", "extra": 1}, "unknown field `extra`"),
        ({"workflowId": ""}, "workflowId must be 1 to 255"),
        ({"workflowId": "a\u0000b"}, "must not contain the NUL character"),
        ({"workflowId": "w", "customData": {"k": "a\u0000"}}, "must not contain the NUL"),
        ({"workflowId": "w", "mode": "party"}, "mode must be one of"),
        ({"workflowId": "w", "customData": {"bad-key": "v"}}, "'bad-key' may only contain"),
        ({"workflowId": "w", "customData": {"k": 1}}, "value of 'k' must be a string"),
        ({"workflowId": "w", "customData": {"k" * 51: "v"}}, "longer than 50"),
        ({"workflowId": "w", "customData": {"k": "v" * 256}}, "longer than 255"),
        (
            {"workflowId": "w", "customData": {f"k{i}": "v" for i in range(11)}},
            "at most 10 items",
        ),
        ([1, 2], "Expected `object`"),
    ],
)
async def test_create_rejects_bad_input(
    client: httpx.AsyncClient, body: Any, fragment: str
) -> None:
    response = await client.post("/api/v1/executions", json=body)
    assert response.status_code == 400, response.text
    assert fragment in message(response)


@pytest.mark.parametrize("raw", [b"{", b"", b"null", b"\xff"])
async def test_malformed_json_is_400(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.post(
        "/api/v1/executions", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert message(response)


async def test_oversize_engine_body_is_413(client: httpx.AsyncClient, svc: Services) -> None:
    data = "x" * svc.settings.max_body_bytes
    response = await client.post("/api/v1/executions", json={"workflowId": "w", "data": data})
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "needs waitTill, webhook, approval, form, events, or a combination"),
        ({"webhook": {}, "bogus": 1}, "unknown field"),
        ({"waitTill": "tomorrow"}, "RFC 3339"),
        ({"waitTill": "2026-01-01T00:00:00"}, "UTC offset"),
        ({"webhook": {"httpMethod": "BREW"}}, "'BREW' is not one of"),
        ({"webhook": {"httpMethod": []}}, "at least one method"),
        ({"webhook": {"suffix": "../etc"}}, "webhook.suffix"),
        ({"webhook": {"suffix": "a b"}}, "webhook.suffix"),
        ({"webhook": {"responseCode": 99}}, "responseCode"),
        ({"webhook": {"responseHeaders": {"X": "a\r\nb"}}}, "responseHeaders"),
        ({"webhook": {"unknown": 1}}, "unknown field"),
    ],
)
async def test_park_rejects_bad_input_and_leaves_the_execution_running(
    client: httpx.AsyncClient, body: dict[str, Any], fragment: str
) -> None:
    execution = await create(client)
    response = await client.post(f"/api/v1/executions/{execution['id']}/wait", json=body)
    assert response.status_code == 400, response.text
    assert fragment in message(response)
    assert (await get(client, execution["id"]))["status"] == "running"


async def test_timer_only_wait_has_no_resume_url(client: httpx.AsyncClient) -> None:
    execution = await create(client)
    parked = await park(client, execution["id"], waitTill="2026-01-01T01:00:00+01:00")
    assert parked["status"] == "waiting"
    assert parked["waitTill"] == "2026-01-01T00:00:00.000Z"
    assert "resumeUrl" not in parked


async def test_past_wait_till_resumes_at_once(
    client: httpx.AsyncClient, svc: Services, clock: ManualClock
) -> None:
    execution = await create(client)
    await park(client, execution["id"], waitTill="2020-01-01T00:00:00Z")
    await fire_timers(svc, execution["id"])
    after = await get(client, execution["id"], includeData="true")
    assert after["status"] == "running"
    assert after["data"]["waits"][0]["resumedBy"] == "timeout"
    assert after["data"]["waits"][0]["resumedAt"] == "2026-01-01T00:00:00.000Z"


async def test_parking_anything_but_running_is_409(client: httpx.AsyncClient) -> None:
    execution = await create(client)
    await park(client, execution["id"], webhook={})
    response = await client.post(f"/api/v1/executions/{execution['id']}/wait", json={"webhook": {}})
    assert response.status_code == 409
    assert "currently waiting" in message(response)


async def test_finish_and_its_conflicts(client: httpx.AsyncClient) -> None:
    execution = await create(client)
    url = f"/api/v1/executions/{execution['id']}/finish"
    bad = await client.post(url, json={"status": "done"})
    assert bad.status_code == 400
    done = await client.post(url, json={"status": "success", "data": {"total": 3}})
    assert done.status_code == 200
    body = done.json()
    assert (body["status"], body["finished"]) == ("success", True)
    assert body["stoppedAt"] == "2026-01-01T00:00:00.000Z"
    assert "resumeUrl" not in body
    again = await client.post(url, json={"status": "error", "error": {"message": "late"}})
    assert again.status_code == 409
    assert "currently success" in message(again)


async def test_api_resume(client: httpx.AsyncClient) -> None:
    execution = await create(client)
    url = f"/api/v1/executions/{execution['id']}/resume"
    assert (await client.post(url, json={})).status_code == 409
    await park(client, execution["id"], waitTill="2030-01-01T00:00:00Z")
    resumed = await client.post(url, json={"data": {"by": "operator"}})
    assert resumed.status_code == 200
    wait = resumed.json()["data"]["waits"][0]
    assert wait["resumedBy"] == "api"
    assert wait["payload"] == {"body": {"by": "operator"}, "resumedBy": "api"}


async def test_custom_data_verbs(client: httpx.AsyncClient) -> None:
    execution = await create(client, customData={"a": "1"})
    url = f"/api/v1/executions/{execution['id']}/custom-data"
    assert (await client.get(url)).json() == {"a": "1"}
    assert (await client.patch(url, json={"b": "2"})).json() == {"a": "1", "b": "2"}
    assert (await client.get(f"{url}/b")).json() == {"key": "b", "value": "2"}
    assert (await client.put(url, json={"c": "3"})).json() == {"c": "3"}
    missing = await client.get(f"{url}/a")
    assert missing.status_code == 404
    assert "'a'" in message(missing)
    too_many = await client.patch(url, json={f"k{i}": "v" for i in range(10)})
    assert too_many.status_code == 400
    assert "at most 10 items" in message(too_many)
    bad = await client.patch(url, json={"ok": "v", "no way": "v"})
    assert bad.status_code == 400
    assert (await client.get(url)).json() == {"c": "3"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/executions/999"),
        ("GET", "/api/v1/executions/abc"),
        ("POST", "/api/v1/executions/999/wait"),
        ("POST", "/api/v1/executions/999/finish"),
        ("POST", "/api/v1/executions/999/resume"),
        ("GET", "/api/v1/executions/999/custom-data"),
    ],
)
async def test_unknown_ids_are_404(client: httpx.AsyncClient, method: str, path: str) -> None:
    bodies = {"finish": {"status": "success"}, "resume": {}, "wait": {"webhook": {}}}
    body = bodies.get(path.rsplit("/", 1)[-1])
    response = await client.request(method, path, json=body if method == "POST" else None)
    assert response.status_code == 404
    assert "does not exist" in message(response) or path.endswith("/abc")


async def test_api_key_answers(app: Any, svc: Services) -> None:
    transport = httpx.ASGITransport(app=app)
    read_only = await make_key(svc, "execution:read")
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        missing = await http.post("/api/v1/executions", json={"workflowId": "w"})
        assert missing.status_code == 401
        assert missing.json() == {"message": "'X-N8N-API-KEY' header required", "code": 401}
        wrong = await http.post(
            "/api/v1/executions", json={"workflowId": "w"}, headers={"X-N8N-API-KEY": "nope"}
        )
        assert (wrong.status_code, wrong.json()) == (401, {"message": "Unauthorized", "code": 401})
        forbidden = await http.post(
            "/api/v1/executions", json={"workflowId": "w"}, headers={"X-N8N-API-KEY": read_only}
        )
        assert (forbidden.status_code, forbidden.json()) == (
            403,
            {"message": "Forbidden", "code": 403},
        )


async def test_unknown_route_and_method_are_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")
    assert response.status_code == 404
    assert response.json() == {"message": "Not Found", "code": 404}
    wrong_method = await client.delete("/api/v1/executions")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["message"]
