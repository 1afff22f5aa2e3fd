"""Prefect end to end: a flow run paused at a waitgate wait, resumed through real HTTP calls
(the form page, the approval page, the resume URL, waitgate's timer), with the callback going
through the relay over a socket to Prefect's own test server.

Attacks first (a forged callback, an answer the model refuses), then the paths: a form, an
approval, duplicates (re-POSTed and redelivered), deadlines with defaults, a cancel.
"""

from __future__ import annotations

import base64
import json
from concurrent.futures import Future
from typing import Any
from uuid import UUID

import httpx
from prefect.client.schemas.objects import StateType
from prefect.exceptions import Pause
from prefect.flow_engine import run_flow_async

from gateway.delivery import sign
from gateway.integrations.prefect import WaitCanceledError, WaitLinks
from tests.engines.prefect.conftest import Loop
from tests.engines.prefect.flows import ask_approval, ask_shipping, ask_shipping_sync, links

DEFAULTS = {"address": "the warehouse", "express": False, "parcels": 1}


def paused_run(loop: Loop, timeout: float = 30) -> tuple[WaitLinks, UUID]:
    """The next link a flow handed out, once its flow run is paused there."""
    link = links.get(timeout=timeout)
    execution = loop.api("GET", f"/executions/{link.execution_id}").json()
    run_id = UUID(execution["customData"]["prefect_flowRunId"])
    loop.gateway.wait_until(lambda: state(loop, run_id).is_paused(), what="the run pausing")
    return link, run_id


def state(loop: Loop, run_id: UUID) -> Any:
    """The flow run's current state."""
    return loop.prefect(lambda c: c.read_flow_run(run_id)).state


def state_types(loop: Loop, run_id: UUID) -> list[StateType]:
    """Every state the flow run went through, in order."""
    states = loop.prefect(lambda c: c.read_flow_run_states(run_id))
    return [s.type for s in states]


def deliveries(loop: Loop, execution_id: int) -> list[dict[str, Any]]:
    """The callbacks waitgate sent for an execution."""
    found: list[dict[str, Any]] = loop.api("GET", f"/executions/{execution_id}/deliveries").json()[
        "data"
    ]
    return found


def delivered(loop: Loop, execution_id: int, attempts: int = 1) -> dict[str, Any]:
    """The execution's one callback, once the relay answered it ``attempts`` times."""

    def done() -> dict[str, Any] | None:
        found = [d for d in deliveries(loop, execution_id) if d["channel"] is None]
        ok = found and len(found[0]["attempts"]) >= attempts and found[0]["status"] != "pending"
        return found[0] if ok else None

    found: dict[str, Any] = loop.gateway.wait_until(done, what="the callback delivered")
    return found


def post_to_relay(loop: Loop, body: bytes, message_id: str, secret: str) -> httpx.Response:
    """A callback POSTed to the relay, signed with ``secret`` at the gateway's time."""
    stamp = loop.gateway.clock.now_ms() // 1000
    key = base64.b64decode(secret.removeprefix("whsec_"))
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(key, message_id, stamp, body),
        "content-type": "application/json",
    }
    return httpx.post(loop.relay_url, content=body, headers=headers)


def failure(result: Future[Any]) -> BaseException:
    """What the flow call raised."""
    error = result.exception(timeout=60)
    assert error is not None
    return error


def start_shipping(loop: Loop, **parameters: Any) -> Future[Any]:
    gw = loop.gateway
    return loop.start(
        ask_shipping, url=gw.url, key=gw.admin_key, relay=loop.relay_url, **parameters
    )


def start_approval(loop: Loop, **parameters: Any) -> Future[Any]:
    gw = loop.gateway
    return loop.start(
        ask_approval, url=gw.url, key=gw.admin_key, relay=loop.relay_url, **parameters
    )


def test_a_forged_callback_is_refused_and_the_run_stays_paused(loop: Loop) -> None:
    result = start_shipping(loop)
    link, run_id = paused_run(loop)
    event = {
        "type": "execution.resumed",
        "timestamp": "2026-01-01T00:00:00Z",
        "data": {
            "executionId": link.execution_id,
            "workflowId": "prefect:Where to?",
            "customData": {"prefect_flowRunId": str(run_id), "prefect_inputKey": "paused-x"},
            "resumedBy": "form",
            "payload": {"formData": {"address": "attacker", "parcels": 9}},
        },
    }
    forged_secret = "whsec_" + base64.b64encode(b"not-the-gateway-secret-32-bytes!").decode()
    answer = post_to_relay(loop, json.dumps(event).encode(), "msg_forged", forged_secret)
    assert answer.status_code == 401
    assert state(loop, run_id).is_paused()
    assert deliveries(loop, link.execution_id) == []

    httpx.post(link.link, data={"address": "Oslo"})
    assert result.result(timeout=60)["address"] == "Oslo"


def test_an_answer_the_model_refuses_fails_the_run_saying_why(loop: Loop) -> None:
    result = start_shipping(loop)
    link, run_id = paused_run(loop)
    assert link.resume_url is not None
    call = httpx.post(link.resume_url, json={"parcels": 99})
    assert call.status_code == 200, call.text
    assert delivered(loop, link.execution_id)["attempts"][0]["statusCode"] == 200
    ended = state(loop, run_id)
    assert ended.type == StateType.FAILED
    assert "refused answer" in ended.message
    assert "parcels" in ended.message
    assert failure(result) is not None


def test_a_form_answer_resumes_the_paused_flow_with_its_data_once(loop: Loop) -> None:
    result = start_shipping(loop)
    link, run_id = paused_run(loop)
    assert "/form-waiting/" in link.link
    assert link.wait_till is not None

    answer = httpx.post(link.link, data={"address": "Storgata 1, Oslo", "parcels": "2"})
    assert answer.status_code == 200, answer.text
    expected = {"address": "Storgata 1, Oslo", "express": False, "parcels": 2}
    assert result.result(timeout=60) == expected
    again = httpx.post(link.link, data={"address": "elsewhere", "parcels": "3"})
    assert again.status_code >= 400
    callback = delivered(loop, link.execution_id)
    assert callback["status"] == "delivered"
    assert [a["statusCode"] for a in callback["attempts"]] == [200]
    assert state_types(loop, run_id).count(StateType.PAUSED) == 1
    assert state(loop, run_id).type == StateType.COMPLETED
    execution = loop.api("GET", f"/executions/{link.execution_id}").json()
    assert execution["status"] == "success"


def test_an_answer_given_in_prefect_closes_the_waitgate_wait(loop: Loop) -> None:
    result = start_shipping(loop)
    link, run_id = paused_run(loop)
    answer = {"address": "Tromsø", "express": True, "parcels": 3}
    loop.prefect(lambda c: c.resume_flow_run(run_id, run_input=answer))  # as Prefect's UI does
    assert result.result(timeout=60) == answer

    execution = loop.api("GET", f"/executions/{link.execution_id}?includeData=true").json()
    assert execution["status"] == "success"
    (wait,) = execution["data"]["waits"]
    assert wait["resumedBy"] == "api"
    assert wait["payload"] == {"formData": answer, "resumedBy": "api"}
    late = httpx.post(link.link, data={"address": "elsewhere", "parcels": "1"})
    assert late.status_code >= 400  # the link no longer takes an answer
    callback = delivered(loop, link.execution_id)  # the resume's callback changes nothing
    assert callback["status"] == "delivered"
    assert state_types(loop, run_id).count(StateType.PAUSED) == 1
    assert state(loop, run_id).type == StateType.COMPLETED


def test_a_duplicate_callback_is_ignored(loop: Loop) -> None:
    result = start_shipping(loop)
    link, run_id = paused_run(loop)
    httpx.post(link.link, data={"address": "Bergen", "express": "on"})
    assert result.result(timeout=60)["express"] is True
    callback = delivered(loop, link.execution_id)
    history = state_types(loop, run_id)

    body = json.dumps(callback["payload"]).encode()
    again = post_to_relay(loop, body, callback["id"], loop.gateway.callback_secret)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"

    redeliver = loop.api("POST", f"/deliveries/{callback['id']}/redeliver")
    assert redeliver.status_code == 202, redeliver.text
    assert [a["statusCode"] for a in delivered(loop, link.execution_id, 2)["attempts"]] == [
        200,
        200,
    ]
    assert state_types(loop, run_id) == history
    assert state(loop, run_id).type == StateType.COMPLETED


def test_the_approval_page_decides(loop: Loop) -> None:
    result = start_approval(loop)
    link, _ = paused_run(loop)
    assert "/approval/" in link.link
    answer = httpx.post(link.link, data={"decision": "approve", "comment": "ship it"})
    assert answer.status_code == 200, answer.text
    decision = result.result(timeout=60)
    assert decision["approved"] is True
    assert decision["comment"] == "ship it"
    assert decision["timed_out"] is False


def test_the_deadline_resumes_with_the_model_defaults(loop: Loop) -> None:
    result = start_shipping(loop, deadline=600)
    link, run_id = paused_run(loop)
    loop.gateway.advance(599_000)
    assert state(loop, run_id).is_paused()
    loop.gateway.advance(2_000)
    assert result.result(timeout=60) == DEFAULTS
    assert deliveries(loop, link.execution_id)[0]["payload"]["data"]["resumedBy"] == "timeout"


def test_the_deadline_decides_an_approval_with_its_default(loop: Loop) -> None:
    result = start_approval(loop, default=True)
    paused_run(loop)
    loop.gateway.advance(3_601_000)
    decision = result.result(timeout=60)
    assert decision["approved"] is True
    assert decision["timed_out"] is True


def test_a_canceled_execution_cancels_the_flow_run(loop: Loop) -> None:
    result = start_shipping(loop)
    link, run_id = paused_run(loop)
    stop = loop.api("POST", f"/executions/{link.execution_id}/stop")
    assert stop.status_code == 200, stop.text
    assert isinstance(failure(result), WaitCanceledError)
    assert state(loop, run_id).type == StateType.CANCELLED


def test_a_wait_without_a_deadline_waits_for_its_answer(loop: Loop) -> None:
    result = start_shipping(loop, deadline=None)
    link, _ = paused_run(loop)
    assert link.wait_till is None
    httpx.post(link.link, data={"parcels": "3"})
    assert result.result(timeout=60)["parcels"] == 3


def test_a_suspended_run_ends_its_process_and_runs_again_with_the_answer(loop: Loop) -> None:
    """``mode="suspend"`` as a worker sees it: the flow run of a deployment suspends and its
    process ends; after the resume the worker (here the test) runs it again, and the same wait
    returns the answer without parking a second time."""
    gw = loop.gateway
    parameters = {"url": gw.url, "key": gw.admin_key, "relay": loop.relay_url, "mode": "suspend"}

    async def deploy(client: Any) -> Any:
        flow_id = await client.create_flow(ask_shipping)
        deployment_id = await client.create_deployment(flow_id=flow_id, name="suspend-test")
        return await client.create_flow_run_from_deployment(deployment_id, parameters=parameters)

    flow_run = loop.prefect(deploy)

    def work() -> Any:
        run = loop.prefect(lambda c: c.read_flow_run(flow_run.id))
        return run_flow_async(ask_shipping, flow_run=run, parameters=parameters)

    first = loop.start(work)
    link = links.get(timeout=30)
    assert isinstance(failure(first), Pause)
    assert state(loop, flow_run.id).name == "Suspended"

    answer = httpx.post(link.link, data={"address": "Tromsø", "parcels": "4"})
    assert answer.status_code == 200, answer.text
    gw.wait_until(lambda: state(loop, flow_run.id).is_scheduled(), what="the run rescheduled")

    again = loop.start(work)
    assert again.result(timeout=60) == {"address": "Tromsø", "express": False, "parcels": 4}
    assert links.empty()
    assert loop.api("GET", f"/executions/{link.execution_id + 1}").status_code == 404


def test_named_approvers_decide_through_the_api(loop: Loop) -> None:
    result = start_approval(loop, approvers=["ann", "bob"])
    link, run_id = paused_run(loop)
    assert set(link.approval_urls) == {"ann", "bob"}
    path = f"/executions/{link.execution_id}/decisions"
    with loop.gateway.client() as api:
        first = api.post(path, json={"approver": "ann", "decision": "approve", "comment": "ok"})
        assert first.status_code == 201, first.text
        assert state(loop, run_id).is_paused()
        second = api.post(path, json={"approver": "bob", "decision": "approve"})
        assert second.status_code == 201, second.text
    decision = result.result(timeout=60)
    assert decision["approved"] is True
    assert decision["decided_by"] == ["ann", "bob"]
    assert decision["comment"] == "ok"


def test_a_callback_before_the_pause_is_answered_503_for_a_retry(loop: Loop) -> None:
    """An answer faster than the flow: the run is not paused yet, so the relay asks waitgate
    to deliver again; a cancel of a run that has ended changes nothing."""

    async def scheduled(client: Any) -> Any:
        return await client.create_flow_run(ask_shipping, parameters={"url": "", "key": ""})

    run = loop.prefect(scheduled)
    data: dict[str, Any] = {
        "executionId": 41,
        "workflowId": "prefect:Where to?",
        "customData": {"prefect_flowRunId": str(run.id), "prefect_inputKey": "paused-w-1"},
        "resumedBy": "form",
        "payload": {"formData": {"parcels": 2}},
    }
    event = {"type": "execution.resumed", "timestamp": "2026-01-01T00:00:00Z", "data": data}
    secret = loop.gateway.callback_secret
    early = post_to_relay(loop, json.dumps(event).encode(), "msg_early", secret)
    assert early.status_code == 503
    assert state(loop, run.id).type == StateType.PENDING

    result = start_shipping(loop)
    link, run_id = paused_run(loop)
    httpx.post(link.link, data={"parcels": "5"})
    assert result.result(timeout=60)["parcels"] == 5
    canceled = {
        "type": "execution.canceled",
        "timestamp": "2026-01-01T00:00:00Z",
        "data": {
            **data,
            "customData": {
                "prefect_flowRunId": str(run_id),
                "prefect_inputKey": "paused-waitgate-1",
            },
        },
    }
    late = post_to_relay(loop, json.dumps(canceled).encode(), "msg_late", secret)
    assert late.status_code == 200
    assert state(loop, run_id).type == StateType.COMPLETED


def test_a_synchronous_flow_waits_the_same_way(loop: Loop) -> None:
    gw = loop.gateway
    result = loop.start(ask_shipping_sync, url=gw.url, key=gw.admin_key, relay=loop.relay_url)
    link, _ = paused_run(loop)
    httpx.post(link.link, data={"address": "Trondheim"})
    assert result.result(timeout=60) == {**DEFAULTS, "address": "Trondheim"}


def test_waitgate_relay_builds_the_prefect_adapter() -> None:
    """``waitgate relay --engine prefect`` finds ``relay_adapter`` in this package."""
    from gateway.cli_relay import adapter_factory
    from gateway.integrations.prefect import relay_adapter

    assert adapter_factory("prefect") is relay_adapter
