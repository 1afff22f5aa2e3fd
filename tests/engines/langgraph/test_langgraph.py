"""LangGraph end to end: a thread interrupted by ``waitgate_interrupt`` is continued by the
relay exactly once, with what a person or partner sent over HTTP, or with the default at the
deadline; duplicates and forged callbacks change nothing."""

from __future__ import annotations

import json
from typing import Any

import httpx

from gateway.integrations.langgraph import INTERRUPT_KEY, THREAD_KEY
from tests.engines.langgraph.conftest import World, finished_values
from tests.engines.relay_socket import deliveries, poll, post_at_once, signed_headers

HOUR_MS = 3600 * 1000


def config(thread: str) -> dict[str, Any]:
    """The LangGraph config of one thread."""
    return {"configurable": {"thread_id": thread}}


async def start(world: World, thread: str, **state: Any) -> dict[str, Any]:
    """Run the graph until it interrupts; the interrupt's value (what the caller sees)."""
    out = await world.graph.ainvoke({"order": "A-1", **state}, config(thread))
    (pending,) = out["__interrupt__"]
    value: dict[str, Any] = pending.value
    assert value["waitgate"]["url"].startswith(world.gateway.url)
    return value


async def finished(world: World, thread: str) -> dict[str, Any]:
    """The thread's values once it has run to its end."""
    return await finished_values(world.graph, thread)


async def api(world: World) -> httpx.AsyncClient:
    """An admin client of the gateway's API."""
    return httpx.AsyncClient(
        base_url=f"{world.gateway.url}/api/v1",
        headers={"X-N8N-API-KEY": world.gateway.admin_key},
    )


async def execution(world: World, execution_id: int) -> dict[str, Any]:
    """One execution as the API shows it."""
    async with await api(world) as client:
        answer = await client.get(f"/executions/{execution_id}")
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found


async def test_approval_page_continues_the_thread_once(world: World) -> None:
    asked = await start(world, "t-approve")
    eid = asked["waitgate"]["executionId"]
    parked = await execution(world, eid)
    assert parked["status"] == "waiting"
    assert parked["customData"][THREAD_KEY] == "t-approve"
    assert parked["customData"][INTERRUPT_KEY]
    snapshot = await world.graph.aget_state(config("t-approve"))
    assert snapshot.next == ("ask",)

    async with httpx.AsyncClient() as browser:
        page = await browser.get(asked["waitgate"]["url"])
        assert page.status_code == 200
        assert "Refund order A-1?" in page.text
        done = await browser.post(asked["waitgate"]["url"], data={"decision": "approve"})
        assert done.status_code == 200, done.text
        values = await finished(world, "t-approve")
        assert values["answer"] is True
        assert values["resumed_by"] == "form"
        assert values["log"] == ["asked", "after:form"]
        again = await browser.post(asked["waitgate"]["url"], data={"decision": "reject"})
        assert "Approved" not in again.text

    # The relay finished the execution once the thread had the answer.
    await poll(
        lambda: _status_is(world, eid, "success"), what="the execution finishing in waitgate"
    )
    # The same delivery sent again (same webhook-id): answered as a duplicate, nothing runs.
    (delivery,) = await deliveries(world.gateway, eid)
    async with await api(world) as client:
        resent = await client.post(f"/deliveries/{delivery['id']}/redeliver")
        assert resent.status_code == 202, resent.text

    async def second_attempt() -> bool:
        (again,) = await deliveries(world.gateway, eid)
        codes = [a["statusCode"] for a in again["attempts"]]
        return len(codes) >= 2 and codes[-1] == 200

    await poll(second_attempt, what="the redelivery")
    values = dict((await world.graph.aget_state(config("t-approve"))).values)
    assert values["log"] == ["asked", "after:form"]


async def _status_is(world: World, execution_id: int, status: str) -> bool:
    found: str = (await execution(world, execution_id))["status"]
    return found == status


async def test_resume_url_call_continues_with_its_body(world: World) -> None:
    asked = await start(world, "t-webhook", kind="webhook", default={"carrier": "none"})
    assert asked["waitgate"]["url"] == asked["waitgate"]["resumeUrl"]
    async with httpx.AsyncClient() as partner:
        called = await partner.post(asked["waitgate"]["resumeUrl"], json={"carrier": "DHL"})
        assert called.status_code == 200, called.text
        values = await finished(world, "t-webhook")
        assert values["answer"] == {"carrier": "DHL"}
        assert values["resumed_by"] == "webhook"
        twice = await partner.post(asked["waitgate"]["resumeUrl"], json={"carrier": "UPS"})
        assert twice.status_code == 409
    assert values["log"] == ["asked", "after:webhook"]


async def test_form_answer_continues_with_the_typed_data(world: World) -> None:
    asked = await start(world, "t-form", kind="form")
    assert asked["default"] == {"amount": 10, "reason": "late delivery"}
    async with httpx.AsyncClient() as person:
        form = await person.get(asked["waitgate"]["url"])
        assert form.status_code == 200
        sent = await person.post(asked["waitgate"]["url"], data={"amount": "25", "reason": "torn"})
        assert sent.status_code == 200, sent.text
    values = await finished(world, "t-form")
    assert values["answer"] == {"amount": 25, "reason": "torn"}
    assert values["resumed_by"] == "form"


async def test_node_run_again_parks_no_second_wait(world: World) -> None:
    first = await start(world, "t-rerun")
    # Invoking the interrupted thread again runs the node again from its start.
    out = await world.graph.ainvoke(None, config("t-rerun"))
    (pending,) = out["__interrupt__"]
    assert pending.value["waitgate"] == first["waitgate"]
    async with await api(world) as client:
        listed = await client.get(
            "/executions", params={f"customData[{THREAD_KEY}]": "t-rerun", "status": "waiting"}
        )
        assert [e["id"] for e in listed.json()["data"]] == [first["waitgate"]["executionId"]]


async def test_deadline_continues_with_the_default(world: World) -> None:
    await start(world, "t-late", default=True)
    formed = await start(world, "t-late-form", kind="form")
    world.gateway.advance(2 * HOUR_MS)
    values = await finished(world, "t-late")
    assert values["answer"] is True
    assert values["resumed_by"] == "timeout"
    assert values["log"] == ["asked", "after:timeout"]
    form_values = await finished(world, "t-late-form")
    assert form_values["answer"] == formed["default"] == {"amount": 10, "reason": "late delivery"}


async def test_stopped_execution_rejects_the_approval(world: World) -> None:
    asked = await start(world, "t-stop", default=True)
    async with await api(world) as client:
        stopped = await client.post(f"/executions/{asked['waitgate']['executionId']}/stop")
        assert stopped.status_code == 200, stopped.text
    values = await finished(world, "t-stop")
    assert values["answer"] is False
    assert values["resumed_by"] == "canceled"


def callback_body(execution_id: int, thread: str, interrupt_id: str) -> bytes:
    """An ``execution.resumed`` event approving the thread's interrupt."""
    return json.dumps(
        {
            "type": "execution.resumed",
            "timestamp": "2026-01-01T00:00:00Z",
            "data": {
                "executionId": execution_id,
                "workflowId": "refunds",
                "customData": {THREAD_KEY: thread, INTERRUPT_KEY: interrupt_id},
                "resumedBy": "form",
                "payload": {"approved": True},
            },
        }
    ).encode()


async def test_forged_or_mismatched_callbacks_do_not_resume(world: World) -> None:
    asked = await start(world, "t-forged")
    eid = asked["waitgate"]["executionId"]
    interrupt_id = (await execution(world, eid))["customData"][INTERRUPT_KEY]
    body = callback_body(eid, "t-forged", interrupt_id)
    now = world.gateway.clock.now_ms() / 1000
    wrong_key = "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
    async with httpx.AsyncClient() as attacker:
        forged = await attacker.post(
            world.relay.url, content=body, headers=signed_headers(wrong_key, "msg_f1", body, now)
        )
        assert forged.status_code == 401
        stale = await attacker.post(
            world.relay.url,
            content=body,
            headers=signed_headers(world.gateway.callback_secret, "msg_f2", body, now - 3600),
        )
        assert stale.status_code == 401
        tampered_headers = signed_headers(world.gateway.callback_secret, "msg_f3", body, now)
        tampered = await attacker.post(
            world.relay.url, content=body.replace(b"form", b"api!"), headers=tampered_headers
        )
        assert tampered.status_code == 401
        # Signed, but for another execution than the one the interrupt waits for.
        other = callback_body(eid + 100, "t-forged", interrupt_id)
        mismatched = await attacker.post(
            world.relay.url,
            content=other,
            headers=signed_headers(world.gateway.callback_secret, "msg_f4", other, now),
        )
        assert mismatched.status_code == 200
    snapshot = await world.graph.aget_state(config("t-forged"))
    assert snapshot.next == ("ask",)
    assert (await execution(world, eid))["status"] == "waiting"


async def test_two_callbacks_at_once_continue_the_thread_once(world: World) -> None:
    asked = await start(world, "t-race")
    eid = asked["waitgate"]["executionId"]
    interrupt_id = (await execution(world, eid))["customData"][INTERRUPT_KEY]
    body = callback_body(eid, "t-race", interrupt_id)
    statuses = await post_at_once(
        world.relay, world.gateway, body, "msg_race_1", "msg_race_2", "msg_race_3"
    )
    assert statuses == [200, 200, 200]
    values = await finished(world, "t-race")
    assert values["log"] == ["asked", "after:form"]
