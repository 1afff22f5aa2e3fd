"""The resume URL: n8n's answers, the payload, early resumes and races."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from gateway.clock import ManualClock
from gateway.services import Services
from tests.conftest import create, get, park


async def waiting(client: httpx.AsyncClient, **webhook: Any) -> dict[str, Any]:
    execution = await create(client)
    return await park(client, execution["id"], webhook={"httpMethod": "POST", **webhook})


def message(response: httpx.Response) -> str:
    body: dict[str, Any] = response.json()
    return str(body["message"])


async def test_payload_has_n8n_shape_without_the_signature(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    parked = await waiting(client, suffix="approve")
    url = parked["resumeUrl"] + "&choice=yes"
    response = await anon.post(url, json={"answer": 42}, headers={"X-Trace": "t1"})
    assert response.status_code == 200
    wait = (await get(client, parked["id"], includeData="true"))["data"]["waits"][0]
    payload = wait["payload"]
    assert payload["body"] == {"answer": 42}
    assert payload["query"] == {"choice": "yes"}
    assert payload["headers"]["x-trace"] == "t1"
    assert payload["params"] == {"suffix": "approve"}
    assert payload["executionMode"] == "production"
    assert payload["resumedBy"] == "webhook"
    assert "signature" not in payload["webhookUrl"]
    assert payload["webhookUrl"].endswith(f"/webhook-waiting/{parked['id']}/approve?choice=yes")
    assert wait["resumedBy"] == "webhook"


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("text/plain", b"hello", "hello"),
        ("application/x-www-form-urlencoded", b"a=1&b=two", {"a": "1", "b": "two"}),
        ("application/xml", b"<r><a>1</a><a>2</a></r>", {"r": {"a": ["1", "2"]}}),
        (
            "application/pdf",
            b"%PDF",
            {"binary": {"data": "JVBERg==", "mimeType": "application/pdf", "fileSize": 4}},
        ),
    ],
)
async def test_bodies_are_parsed_by_content_type(
    client: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    content_type: str,
    body: bytes,
    expected: Any,
) -> None:
    parked = await waiting(client)
    response = await anon.post(
        parked["resumeUrl"], content=body, headers={"content-type": content_type}
    )
    assert response.status_code == 200, response.text
    wait = (await get(client, parked["id"], includeData="true"))["data"]["waits"][0]
    assert wait["payload"]["body"] == expected


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"{not json"),
        ("application/json", b"[" * 100 + b"]" * 100),
        ("application/xml", b"<r><unclosed></r>"),
        ("text/plain", b"\xff\xfe\xfa"),
    ],
)
async def test_unparsable_body_is_422_and_the_wait_stays(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, content_type: str, body: bytes
) -> None:
    parked = await waiting(client)
    response = await anon.post(
        parked["resumeUrl"], content=body, headers={"content-type": content_type}
    )
    assert response.status_code == 422
    assert response.json()["message"] == "Failed to parse request body"
    assert response.json()["code"] == 422
    assert (await get(client, parked["id"]))["status"] == "waiting"


async def test_oversize_body_is_413_and_the_wait_stays(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, svc: Services
) -> None:
    parked = await waiting(client)
    big = b"x" * (svc.settings.max_body_bytes + 1)
    response = await anon.post(parked["resumeUrl"], content=big)
    assert response.status_code == 413
    assert "limit" in message(response)
    assert (await get(client, parked["id"]))["status"] == "waiting"


async def test_configured_answer_is_sent(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    parked = await waiting(
        client,
        responseCode=201,
        responseData={"thanks": True},
        responseHeaders={"X-Approved": "yes"},
    )
    response = await anon.post(parked["resumeUrl"])
    assert response.status_code == 201
    assert response.json() == {"thanks": True}
    assert response.headers["x-approved"] == "yes"


async def test_text_answer_and_several_methods(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    execution = await create(client)
    parked = await park(
        client,
        execution["id"],
        webhook={"httpMethod": ["get", "PUT"], "responseData": "Thank you"},
    )
    post = await anon.post(parked["resumeUrl"])
    assert post.status_code == 404
    assert "matching path/method" in message(post)
    response = await anon.put(parked["resumeUrl"])
    assert response.status_code == 200
    assert response.text == "Thank you"
    assert response.headers["content-type"].startswith("text/plain")


async def test_options_answers_204_with_cors(anon: httpx.AsyncClient) -> None:
    response = await anon.options("/webhook-waiting/1")
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda url: url.replace("signature=", "signature=x"),
        lambda url: url[:-2] + ("AA" if not url.endswith("AA") else "BB"),
        lambda url: url.split("?")[0],
        lambda url: url.replace("signature=1.", "signature=2."),
    ],
)
async def test_bad_signature_is_401_and_uses_nothing(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, mangle: Any
) -> None:
    parked = await waiting(client)
    response = await anon.post(mangle(parked["resumeUrl"]))
    assert response.status_code == 401
    assert response.json()["error"] == "Invalid token"
    assert (await get(client, parked["id"]))["status"] == "waiting"


async def test_signature_of_one_execution_does_not_open_another(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    first = await waiting(client)
    second = await waiting(client)
    token = first["resumeUrl"].split("signature=")[1]
    response = await anon.post(f"/webhook-waiting/{second['id']}?signature={token}")
    assert response.status_code == 401


async def test_suffix_is_bound_to_the_signature(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    execution = await create(client)
    parked = await park(client, execution["id"], webhook={"httpMethod": "POST", "suffix": "yes"})
    assert "/yes?" in parked["resumeUrl"]
    assert (await anon.post(parked["resumeUrl"].replace("/yes?", "/no?"))).status_code == 401
    # the URL handed out at create names no suffix: valid signature, but no such webhook
    no_suffix = await anon.post(execution["resumeUrl"])
    assert no_suffix.status_code == 404
    assert "matching path/method" in message(no_suffix)
    assert (await anon.post(parked["resumeUrl"])).status_code == 200


async def test_replay_is_409_and_non_numeric_ids_are_401(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    parked = await waiting(client)
    assert (await anon.post(parked["resumeUrl"])).status_code == 200
    replay = await anon.post(parked["resumeUrl"])
    assert replay.status_code == 409
    assert message(replay) == f'The execution "{parked["id"]}" is running already.'
    assert (await anon.post("/webhook-waiting/abc?signature=1.x")).status_code == 401


async def test_deleted_execution_is_404(client: httpx.AsyncClient, anon: httpx.AsyncClient) -> None:
    parked = await waiting(client)
    assert (await client.delete(f"/api/v1/executions/{parked['id']}")).status_code == 200
    response = await anon.post(parked["resumeUrl"])
    assert response.status_code == 404
    assert message(response) == f'The execution "{parked["id"]}" does not exist.'


async def test_finished_and_canceled_answers(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    ok, failed, stopped = [await waiting(client) for _ in range(3)]
    for parked, status in ((ok, "success"), (failed, "error")):
        await client.post(f"/api/v1/executions/{parked['id']}/resume", json={})
        finish = await client.post(
            f"/api/v1/executions/{parked['id']}/finish", json={"status": status}
        )
        assert finish.status_code == 200
    assert (await client.post(f"/api/v1/executions/{stopped['id']}/stop")).status_code == 200
    answers = {
        ok["id"]: "has finished already.",
        failed["id"]: "has finished with error.",
        stopped["id"]: "was canceled.",
    }
    for parked in (ok, failed, stopped):
        response = await anon.post(parked["resumeUrl"])
        assert response.status_code == 409
        assert message(response) == f'The execution "{parked["id"]}" {answers[parked["id"]]}'


async def test_url_of_an_earlier_wait_cannot_resume_a_later_one(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    first = await waiting(client)
    assert (await anon.post(first["resumeUrl"])).status_code == 200
    second = await park(client, first["id"], webhook={"httpMethod": "POST"})
    assert second["resumeUrl"] != first["resumeUrl"]
    stale = await anon.post(first["resumeUrl"])
    assert stale.status_code == 409
    assert "has ended" in message(stale)
    assert (await get(client, first["id"]))["status"] == "waiting"
    assert (await anon.post(second["resumeUrl"])).status_code == 200


async def test_early_resume_is_accepted_and_applied_at_park(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    execution = await create(client)
    early = await anon.post(execution["resumeUrl"], json={"fast": True})
    assert early.status_code == 202
    again = await anon.post(execution["resumeUrl"], json={"fast": "again"})
    assert again.status_code == 202  # kept too, but the first call the wait admits wins
    assert "only if the wait's checks refuse the calls kept before it" in again.json()["message"]
    parked = await park(client, execution["id"], webhook={"httpMethod": "POST"})
    assert parked["status"] == "running"
    wait = (await get(client, execution["id"], includeData="true"))["data"]["waits"][0]
    assert wait["resumedBy"] == "webhook"
    assert wait["payload"]["body"] == {"fast": True}


async def test_concurrent_calls_resume_exactly_once(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    parked = await waiting(client)
    responses = await asyncio.gather(*(anon.post(parked["resumeUrl"]) for _ in range(20)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * 19
    waits = (await get(client, parked["id"], includeData="true"))["data"]["waits"]
    assert len(waits) == 1


async def test_call_versus_timeout_has_one_winner(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, svc: Services, clock: ManualClock
) -> None:
    execution = await create(client)
    parked = await park(
        client, execution["id"], waitTill="2026-01-01T00:00:01.000Z", webhook={"httpMethod": "POST"}
    )
    clock.set(1_767_225_601_000)
    call, _ = await asyncio.gather(anon.post(parked["resumeUrl"]), svc.scheduler.run_due())
    assert call.status_code in {200, 409}
    waits = (await get(client, execution["id"], includeData="true"))["data"]["waits"]
    assert len(waits) == 1
    assert waits[0]["resumedBy"] == ("webhook" if call.status_code == 200 else "timeout")


async def test_call_versus_stop_has_one_winner(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    for _ in range(5):
        parked = await waiting(client)
        call, stop = await asyncio.gather(
            anon.post(parked["resumeUrl"]),
            client.post(f"/api/v1/executions/{parked['id']}/stop"),
        )
        final = (await get(client, parked["id"]))["status"]
        if call.status_code == 200:
            # the resume won; stopping a running execution is still allowed afterwards
            assert stop.status_code == 200
            assert final == "canceled"
        else:
            assert call.status_code == 409
            assert stop.status_code == 200
            assert final == "canceled"
        waits = (await get(client, parked["id"], includeData="true"))["data"]["waits"]
        assert sum(1 for w in waits if w["resumedAt"]) == (1 if call.status_code == 200 else 0)
