"""Celery end to end: a task parks a question and ends; the relay sends the continuation
exactly once with what a person or partner sent over HTTP, or with the default at the
deadline; duplicates and forged callbacks send nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from gateway.integrations.asks import Approval, GatewayLink, Webhook
from gateway.integrations.celery import DEFAULT_KEY, KEY_KEY, KIND_KEY, TASK_ID_KEY, TASK_KEY, park
from tests.engines.celery.conftest import World
from tests.engines.celery.tasks import CONTINUATION, RUNS, barrier, request_refund
from tests.engines.relay_socket import deliveries, poll, post_at_once, signed_headers

HOUR_MS = 3600 * 1000


async def ask(order: str, kind: str = "approval", default: Any = None) -> dict[str, Any]:
    """Run the parking task on the worker; what it handed out."""
    sent = request_refund.delay(order, kind, default)
    parked: dict[str, Any] = await asyncio.to_thread(sent.get, timeout=20)
    return parked


def runs(world: World) -> list[dict[str, Any]]:
    """Every run of the continuation so far."""
    return [json.loads(raw) for raw in world.db.lrange(RUNS, 0, -1)]


async def ran(world: World, count: int) -> list[dict[str, Any]]:
    """The runs, once there are ``count``."""

    async def enough() -> list[dict[str, Any]] | None:
        found = runs(world)
        return found if len(found) >= count else None

    found: list[dict[str, Any]] = await poll(enough, what=f"{count} continuation run(s)")
    return found


async def settled(world: World) -> list[dict[str, Any]]:
    """The runs once the worker has taken everything sent so far (its queue is in order)."""
    await asyncio.to_thread(barrier.delay().get, timeout=20)
    return runs(world)


def api(world: World) -> httpx.AsyncClient:
    """An admin client of the gateway's API."""
    return httpx.AsyncClient(
        base_url=f"{world.gateway.url}/api/v1",
        headers={"X-N8N-API-KEY": world.gateway.admin_key},
    )


async def execution(world: World, execution_id: int) -> dict[str, Any]:
    """One execution as the API shows it."""
    async with api(world) as client:
        answer = await client.get(f"/executions/{execution_id}")
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found


async def test_approval_sends_the_continuation_once(world: World) -> None:
    parked = await ask("A-1")
    eid = parked["executionId"]
    waiting = await execution(world, eid)
    assert waiting["status"] == "waiting"
    assert waiting["customData"][TASK_KEY] == CONTINUATION
    assert waiting["customData"][KIND_KEY] == "approval"
    assert waiting["customData"][KEY_KEY] == "A-1"
    assert waiting["customData"][DEFAULT_KEY] == "false"
    assert await settled(world) == []  # the parking task ended; nothing continues yet

    async with httpx.AsyncClient() as person:
        page = await person.get(parked["url"])
        assert "Refund order A-1?" in page.text
        done = await person.post(parked["url"], data={"decision": "approve"})
        assert done.status_code == 200, done.text
    (run,) = await ran(world, 1)
    assert run["answer"]["value"] is True
    assert run["answer"]["resumedBy"] == "form"
    assert run["answer"]["executionId"] == eid
    assert run["key"] == "A-1"
    assert run["taskId"] == waiting["customData"][TASK_ID_KEY]
    assert run["taskId"].startswith("waitgate-")

    async def finished() -> bool:
        return bool((await execution(world, eid))["status"] == "success")

    await poll(finished, what="the execution finishing in waitgate")

    # The same delivery again (same webhook-id): a duplicate, the adapter is not called.
    (delivery,) = await deliveries(world.gateway, eid)
    async with api(world) as client:
        resent = await client.post(f"/deliveries/{delivery['id']}/redeliver")
        assert resent.status_code == 202, resent.text

    async def second_attempt() -> bool:
        (again,) = await deliveries(world.gateway, eid)
        codes = [a["statusCode"] for a in again["attempts"]]
        return len(codes) >= 2 and codes[-1] == 200

    await poll(second_attempt, what="the redelivery")
    assert len(await settled(world)) == 1


def resumed_event(execution_id: int, custom: dict[str, str]) -> bytes:
    """A well-formed ``execution.resumed`` event for the execution."""
    return json.dumps(
        {
            "type": "execution.resumed",
            "timestamp": "2026-01-01T00:00:00Z",
            "data": {
                "executionId": execution_id,
                "workflowId": "refunds",
                "customData": custom,
                "resumedBy": "form",
                "payload": {"approved": True},
            },
        }
    ).encode()


async def test_a_relay_that_forgot_the_webhook_id_sends_nothing_twice(world: World) -> None:
    parked = await ask("A-2")
    eid = parked["executionId"]
    async with httpx.AsyncClient() as person:
        await person.post(parked["url"], data={"decision": "reject"})
    (run,) = await ran(world, 1)
    assert run["answer"]["value"] is False
    # A signed callback for the same execution under a new webhook-id (as from a relay whose
    # memory of ids was lost): the continuation's task id is known to the result backend.
    body = resumed_event(eid, (await execution(world, eid))["customData"])
    now = world.gateway.clock.now_ms() / 1000
    headers = signed_headers(world.gateway.callback_secret, "msg_other", body, now)
    async with httpx.AsyncClient() as relay_caller:
        answer = await relay_caller.post(world.relay.url, content=body, headers=headers)
        assert answer.status_code == 200, answer.text
    assert len(await settled(world)) == 1


async def test_resume_url_call_sends_its_body(world: World) -> None:
    parked = await ask("A-3", "webhook", {"carrier": "none"})
    async with httpx.AsyncClient() as partner:
        called = await partner.post(parked["resumeUrl"], json={"carrier": "DHL"})
        assert called.status_code == 200, called.text
        (run,) = await ran(world, 1)
        assert run["answer"]["value"] == {"carrier": "DHL"}
        assert run["answer"]["resumedBy"] == "webhook"
        twice = await partner.post(parked["resumeUrl"], json={"carrier": "UPS"})
        assert twice.status_code == 409
    assert len(await settled(world)) == 1


async def test_task_run_again_parks_no_second_wait(world: World) -> None:
    first = await ask("A-4")
    again = await ask("A-4")
    assert again["executionId"] == first["executionId"]
    async with api(world) as client:
        listed = await client.get(
            "/executions", params={f"customData[{KEY_KEY}]": "A-4", "status": "waiting"}
        )
        assert [e["id"] for e in listed.json()["data"]] == [first["executionId"]]


async def test_deadline_sends_the_default(world: World) -> None:
    yes = await ask("A-5", "approval", True)
    partner = await ask("A-6", "webhook", {"carrier": "post"})
    world.gateway.advance(2 * HOUR_MS)
    found = {run["key"]: run for run in await ran(world, 2)}
    assert found["A-5"]["answer"]["value"] is True
    assert found["A-5"]["answer"]["resumedBy"] == "timeout"
    assert found["A-5"]["answer"]["executionId"] == yes["executionId"]
    assert found["A-6"]["answer"]["value"] == {"carrier": "post"}
    assert found["A-6"]["answer"]["executionId"] == partner["executionId"]
    assert len(await settled(world)) == 2


async def test_stopped_execution_sends_a_rejection(world: World) -> None:
    parked = await ask("A-7", "approval", True)
    async with api(world) as client:
        stopped = await client.post(f"/executions/{parked['executionId']}/stop")
        assert stopped.status_code == 200, stopped.text
    (run,) = await ran(world, 1)
    assert run["answer"]["value"] is False
    assert run["answer"]["resumedBy"] == "canceled"


async def test_forged_callbacks_send_nothing(world: World) -> None:
    parked = await ask("A-8")
    eid = parked["executionId"]
    body = resumed_event(eid, (await execution(world, eid))["customData"])
    now = world.gateway.clock.now_ms() / 1000
    wrong_key = "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
    secret = world.gateway.callback_secret
    async with httpx.AsyncClient() as attacker:
        forged = await attacker.post(
            world.relay.url, content=body, headers=signed_headers(wrong_key, "msg_1", body, now)
        )
        assert forged.status_code == 401
        stale = await attacker.post(
            world.relay.url, content=body, headers=signed_headers(secret, "msg_2", body, now - 3600)
        )
        assert stale.status_code == 401
        tampered = await attacker.post(
            world.relay.url,
            content=body.replace(b"A-8", b"A-9"),
            headers=signed_headers(secret, "msg_3", body, now),
        )
        assert tampered.status_code == 401
        unsigned = await attacker.post(world.relay.url, content=body)
        assert unsigned.status_code == 401
    assert await settled(world) == []
    assert (await execution(world, eid))["status"] == "waiting"


def test_a_default_too_long_for_custom_data_is_refused_before_parking() -> None:
    nowhere = GatewayLink("http://127.0.0.1:9", "wg_unused", "http://127.0.0.1:9/callbacks")
    with pytest.raises(ValueError, match="celery_default"):
        park(CONTINUATION, Webhook(default="x" * 300), link=nowhere)
    with pytest.raises(ValueError, match="celery_key"):
        park(CONTINUATION, Approval("ok?"), key="k" * 256, link=nowhere)


async def test_two_callbacks_at_once_send_the_continuation_once(world: World) -> None:
    parked = await ask("A-10")
    eid = parked["executionId"]
    body = resumed_event(eid, (await execution(world, eid))["customData"])
    statuses = await post_at_once(
        world.relay, world.gateway, body, "msg_race_1", "msg_race_2", "msg_race_3"
    )
    assert statuses == [200, 200, 200]
    assert len(await settled(world)) == 1
