"""Airflow's HITL operators through waitgate, end to end: ``dag.test()`` runs an
``ApprovalOperator`` / ``HITLOperator`` whose ``WaitgateNotifier`` parks the request in a real
waitgate; the approver decides there; waitgate's callback reaches the relay over a socket; the
relay answers the request through Airflow's own API server (``hitlDetails``, over a socket, as
user ``waitgate``); Airflow resumes the task, and the next task receives the choice. The
attacks first: a forged callback, a replayed one, a redelivered one."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from airflow.utils.state import DagRunState

from gateway.delivery import sign
from tests.engines.airflow.conftest import RELAY_PASSWORD, RELAY_USER
from tests.engines.airflow.dags.waitgate_dags import hitl_approval_dag, hitl_deadline_dag
from tests.engines.airflow.people import run_while, waiting
from tests.engines.harness import GatewayThread, ServedApp

FORGED_SECRET = "whsec_" + "Zm9yZ2VkLXNlY3JldC1mb3ItdGhlLXJlbGF5LXRlc3Q="


@pytest.fixture(autouse=True)
def _served(airflow_db: object, gateway: GatewayThread, relay: ServedApp) -> None:
    """Every test here needs Airflow's database, waitgate and the relay."""


def airflow_client(airflow_api: ServedApp) -> httpx.Client:
    """Airflow's API as the relay's user sees it."""
    login = {"username": RELAY_USER, "password": RELAY_PASSWORD}
    token = httpx.post(f"{airflow_api.url}/auth/token", json=login).json()["access_token"]
    return httpx.Client(
        base_url=f"{airflow_api.url}/api/v2",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def task_state(airflow_api: ServedApp, custom: dict[str, str]) -> str:
    """The task instance's state as Airflow's API shows it."""
    path = (
        f"/dags/{custom['airflow_dagId']}/dagRuns/{custom['airflow_runId']}/taskInstances/"
        f"{custom['airflow_taskId']}"
    )
    with airflow_client(airflow_api) as api:
        state: str = api.get(path).json()["state"]
        return state


def hitl_detail(airflow_api: ServedApp, custom: dict[str, str]) -> dict[str, Any]:
    """The task's HITL request as Airflow's API shows it."""
    path = (
        f"/dags/{custom['airflow_dagId']}/dagRuns/{custom['airflow_runId']}/taskInstances/"
        f"{custom['airflow_taskId']}/{custom['airflow_mapIndex']}/hitlDetails"
    )
    with airflow_client(airflow_api) as api:
        answer = api.get(path)
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found


def fail_running(airflow_api: ServedApp, dag_id: str) -> None:
    """Mark the DAG's running runs failed (a failed test must not leave ``dag.test()`` waiting
    for a HITL answer forever)."""
    with airflow_client(airflow_api) as api:
        runs = api.get(f"/dags/{dag_id}/dagRuns", params={"state": "running"}).json()
        for run in runs.get("dag_runs", []):
            api.patch(f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}", json={"state": "failed"})


def post_callback(
    gateway: GatewayThread, relay: ServedApp, message_id: str, event: Any, secret: str
) -> httpx.Response:
    """A callback as waitgate sends one, signed with ``secret``."""
    body = json.dumps(event).encode()
    stamp = gateway.clock.now_ms() // 1000
    key = __import__("base64").b64decode(secret.removeprefix("whsec_"))
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(key, message_id, stamp, body),
        "content-type": "application/json",
    }
    return httpx.post(f"{relay.url}/callbacks", content=body, headers=headers, timeout=10)


def delivered(gateway: GatewayThread, execution_id: int) -> dict[str, Any]:
    """The execution's ``execution.resumed`` delivery, once the relay has taken it."""

    def check() -> dict[str, Any] | None:
        with gateway.client() as api:
            found = api.get(f"/executions/{execution_id}/deliveries").json()["data"]
        done = [d for d in found if d["event"] == "execution.resumed" and d["deliveredAt"]]
        return done[0] if done else None

    found: dict[str, Any] = gateway.wait_until(check, within=30, what="the callback delivered")
    return found


def xcom(run: Any, task_id: str) -> Any:
    """A task's return value in this run."""
    return run.get_task_instance(task_id).xcom_pull(task_ids=task_id)


def test_an_approval_in_waitgate_answers_the_hitl_request_once(
    gateway: GatewayThread, relay: ServedApp, airflow_api: ServedApp
) -> None:
    workflow = "wg_hitl_approval.approve_shipment"
    seen: dict[str, Any] = {}

    def ana() -> None:
        execution = waiting(gateway, workflow)
        custom = execution["customData"]
        claim = {
            "type": "execution.resumed",
            "timestamp": "2030-01-01T00:00:00.000Z",
            "data": {
                "executionId": execution["id"],
                "workflowId": workflow,
                "customData": custom,
                "resumedBy": "approval",
                "wait": {"seq": 1},
                "payload": {"approved": True, "option": "Approve"},
            },
        }
        seen["forged"] = post_callback(gateway, relay, "msg_forged", claim, FORGED_SECRET)
        seen["open"] = hitl_detail(airflow_api, custom)  # the forged claim answered nothing
        seen["parked"] = gateway.wait_until(
            lambda: task_state(airflow_api, custom) == "awaiting_input", what="the task parked"
        )  # Airflow 3.3 parks a HITL task without a worker slot or a trigger
        with gateway.client() as api:
            decided = api.post(
                f"/executions/{execution['id']}/decisions",
                json={"approver": "ana", "decision": "approve", "options": ["Approve"]},
            )
            assert decided.status_code == 201, decided.text
        delivery = delivered(gateway, execution["id"])
        seen["answered"] = hitl_detail(airflow_api, custom)
        seen["replayed"] = post_callback(
            gateway, relay, delivery["id"], delivery["payload"], gateway.callback_secret
        )
        with gateway.client() as api:
            again = api.post(f"/deliveries/{delivery['id']}/redeliver")
            assert again.status_code == 202, again.text

        def redelivered() -> list[dict[str, Any]] | None:
            with gateway.client() as api:
                found = api.get(f"/executions/{execution['id']}/deliveries").json()["data"]
            attempts: list[dict[str, Any]] = next(
                d["attempts"] for d in found if d["id"] == delivery["id"]
            )
            return attempts if len(attempts) == 2 else None

        seen["attempts"] = gateway.wait_until(redelivered, within=30, what="the redelivery")
        seen["after"] = hitl_detail(airflow_api, custom)
        seen["execution"] = execution

    abort = lambda: fail_running(airflow_api, "wg_hitl_approval")  # noqa: E731
    run, _ = run_while(gateway, workflow, hitl_approval_dag.test, ana, abort=abort)

    assert seen["forged"].status_code == 401
    assert seen["open"]["response_received"] is False
    answered = seen["answered"]
    assert answered["response_received"] is True
    assert answered["chosen_options"] == ["Approve"]
    assert answered["responded_by_user"]["name"] == RELAY_USER
    assert seen["replayed"].status_code == 200
    assert seen["replayed"].json()["status"] == "duplicate"
    assert [a["statusCode"] for a in seen["attempts"]] == [200, 200]
    assert seen["after"]["responded_at"] == answered["responded_at"]  # answered once
    assert run.state == DagRunState.SUCCESS
    assert xcom(run, "received")["chosen_options"] == ["Approve"]
    custom = seen["execution"]["customData"]
    assert custom["airflow_kind"] == "hitl"
    assert custom["airflow_runId"] == run.run_id


def test_the_deadline_answers_the_hitl_request_with_its_defaults(
    gateway: GatewayThread, airflow_api: ServedApp
) -> None:
    workflow = "wg_hitl_deadline.choose_route"
    seen: dict[str, Any] = {}

    def nobody() -> None:
        execution = waiting(gateway, workflow)
        with httpx.Client(timeout=10) as http:
            page = http.get(execution["approvalUrls"]["ben"])
        seen["page"] = page.text
        seen["open"] = hitl_detail(airflow_api, execution["customData"])
        gateway.advance(3 * 3600 * 1000)  # past the 2 h deadline, on waitgate's ManualClock
        delivered(gateway, execution["id"])
        seen["execution"] = execution

    abort = lambda: fail_running(airflow_api, "wg_hitl_deadline")  # noqa: E731
    run, _ = run_while(gateway, workflow, hitl_deadline_dag.test, nobody, abort=abort)

    assert "Sea" in seen["page"]
    assert "Air" in seen["page"]  # the operator's options, offered to each approver
    assert seen["open"]["options"] == ["Sea", "Air", "Reject"]
    assert run.state == DagRunState.SUCCESS  # a deadline is a decision, not a failure
    assert xcom(run, "received")["chosen_options"] == ["Sea"]
    with gateway.client() as api:
        eid = seen["execution"]["id"]
        waits = api.get(f"/executions/{eid}", params={"includeData": "true"}).json()["data"]
    assert [w["resumedBy"] for w in waits["waits"]] == ["timeout"]
