"""``WaitgateOperator`` end to end: a real DAG run (``dag.test()``) against a real waitgate on a
socket. The task parks, defers on ``WaitgateTrigger`` (rebuilt from its ``serialize()``), and
resumes exactly once with what a partner's call, an approver or the deadline gave it; the next
task receives that through XCom. The attacks first: a forged resume call, a replayed one."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from airflow.utils.state import DagRunState, TaskInstanceState

from gateway.auth import generate_key, hash_key
from gateway.client import WaitgateError
from gateway.integrations.airflow.triggers import WaitgateTrigger
from gateway.integrations.airflow.waitgate_api import (
    Gateway,
    ParkedWait,
    TaskCoordinates,
    find_parked,
    finish,
    park,
)
from tests.engines.airflow.dags.waitgate_dags import (
    DEFAULT,
    approval_dag,
    deadline_dag,
    form_dag,
    stopped_dag,
    webhook_dag,
)
from tests.engines.airflow.people import recording_triggers, run_while, waiting
from tests.engines.harness import GatewayThread

TRIGGER = f"{WaitgateTrigger.__module__}.WaitgateTrigger"


@pytest.fixture(autouse=True)
def _airflow(airflow_db: object, gateway: GatewayThread) -> None:
    """Every test here needs Airflow's database and waitgate."""


def xcom(run: Any, task_id: str, key: str = "return_value") -> Any:
    """A task's XCom in this run, as the next task reads it."""
    return run.get_task_instance(task_id).xcom_pull(task_ids=task_id, key=key)


def one_execution(gateway: GatewayThread, workflow_id: str) -> dict[str, Any]:
    """The only execution of ``workflow_id``, with its waits."""
    with gateway.client() as api:
        found = api.get("/executions", params={"workflowId": workflow_id}).json()["data"]
        assert len(found) == 1, found
        execution: dict[str, Any] = api.get(
            f"/executions/{found[0]['id']}", params={"includeData": "true"}
        ).json()
        return execution


def forged(url: str) -> str:
    """The resume URL with its signature's last character changed."""
    return url[:-1] + ("A" if url[-1] != "A" else "B")


def test_a_partner_call_resumes_the_deferred_task_once(
    gateway: GatewayThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow = "wg_webhook.wait_for_partner"
    calls: dict[str, int] = {}

    def partner() -> str:
        execution = waiting(gateway, workflow)
        url: str = execution["resumeUrl"]
        with httpx.Client(timeout=10) as http:
            calls["forged"] = http.post(forged(url), json={"approved": True}).status_code
            assert waiting(gateway, workflow)["id"] == execution["id"]  # still waiting
            calls["first"] = http.post(url, json={"approved": True, "by": "partner"}).status_code
            calls["again"] = http.post(url, json={"approved": False}).status_code
        return url

    with recording_triggers(monkeypatch) as triggers:
        run, url = run_while(gateway, workflow, webhook_dag.test, partner)

    assert calls == {"forged": 401, "first": 200, "again": 409}
    assert run.state == DagRunState.SUCCESS
    execution = one_execution(gateway, workflow)
    assert execution["customData"] == {
        "waitgate_engine": "airflow",
        "airflow_kind": "operator",
        "airflow_dagId": "wg_webhook",
        "airflow_runId": run.run_id,
        "airflow_taskId": "wait_for_partner",
        "airflow_mapIndex": "-1",
    }
    assert triggers.seen == [
        (
            TRIGGER,
            {
                "execution_id": execution["id"],
                "seq": 1,
                "waitgate_conn_id": "waitgate_default",
                "poll_interval": 0.05,
                "max_poll_interval": 0.2,
            },
        )
    ]  # deferred once: the wait held no worker, the trigger came back from its serialized form
    waits = execution["data"]["waits"]
    assert [w["resumedBy"] for w in waits] == ["webhook"]
    assert waits[0]["payload"]["body"] == {"approved": True, "by": "partner"}
    assert execution["status"] == "success"  # the task marked it done ...
    assert execution["data"]["result"] == waits[0]["payload"]  # ... with what it returned
    payload = xcom(run, "received")
    assert payload["body"] == {"approved": True, "by": "partner"}
    assert xcom(run, "wait_for_partner", "waitgate_url") == url  # the link handed out
    assert xcom(run, "wait_for_partner", "waitgate_execution_id") == execution["id"]


def test_an_approval_resumes_the_task_with_the_decision(
    gateway: GatewayThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow = "wg_approval.wait_for_approval"
    answers: dict[str, int] = {}

    def approver() -> str:
        execution = waiting(gateway, workflow)
        with gateway.client() as api:
            path = f"/executions/{execution['id']}/decisions"
            decided = api.post(path, json={"approver": "ana", "decision": "approve"})
            answers["first"] = decided.status_code
            again = api.post(path, json={"approver": "ana", "decision": "reject"})
            answers["again"] = again.status_code
        return str(execution["approvalUrl"])

    with recording_triggers(monkeypatch) as triggers:
        run, page = run_while(gateway, workflow, approval_dag.test, approver)

    assert run.state == DagRunState.SUCCESS
    # the wait resumed at the first decision: the second one (the same approver) changes nothing
    assert answers == {"first": 201, "again": 409}
    assert len(triggers.seen) == 1
    execution = one_execution(gateway, workflow)
    assert [w["resumedBy"] for w in execution["data"]["waits"]] == ["approval"]
    payload = xcom(run, "received")
    assert payload["approved"] is True
    assert payload["option"] == "approve"
    assert [d["approver"] for d in payload["decisions"]] == ["ana"]
    assert xcom(run, "wait_for_approval", "waitgate_url") == page  # the approval page


def test_the_deadline_resumes_the_task_with_its_default(
    gateway: GatewayThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow = "wg_deadline.wait_with_deadline"

    def nobody() -> str:
        execution = waiting(gateway, workflow)
        gateway.advance(3 * 3600 * 1000)  # past the 2 h deadline, on waitgate's ManualClock
        return str(execution["waitTill"])

    with recording_triggers(monkeypatch) as triggers:
        run, wait_till = run_while(gateway, workflow, deadline_dag.test, nobody)

    assert run.state == DagRunState.SUCCESS  # a deadline is a decision, not a failure
    assert len(triggers.seen) == 1
    execution = one_execution(gateway, workflow)
    waits = execution["data"]["waits"]
    assert [w["resumedBy"] for w in waits] == ["timeout"]
    assert waits[0]["waitTill"] == wait_till
    assert xcom(run, "received") == DEFAULT
    assert execution["data"]["result"] == DEFAULT


def test_a_form_resumes_the_task_with_its_values(gateway: GatewayThread) -> None:
    workflow = "wg_form.ask_address"
    answers: dict[str, int] = {}

    def customer() -> str:
        execution = waiting(gateway, workflow)
        url: str = execution["resumeFormUrl"]
        with httpx.Client(timeout=10) as http:
            answers["first"] = http.post(url, data={"city": "Lyon"}).status_code
            answers["again"] = http.post(url, data={"city": "Paris"}).status_code
        return url

    run, url = run_while(gateway, workflow, form_dag.test, customer)

    assert answers == {"first": 200, "again": 409}
    assert run.state == DagRunState.SUCCESS
    payload = xcom(run, "received")
    assert payload == {"formData": {"city": "Lyon"}, "resumedBy": "form"}
    assert xcom(run, "ask_address", "waitgate_url") == url


def test_an_execution_stopped_in_waitgate_fails_the_task(gateway: GatewayThread) -> None:
    workflow = "wg_stopped.wait_then_stopped"

    def operator() -> None:
        execution = waiting(gateway, workflow)
        with gateway.client() as api:
            assert api.post(f"/executions/{execution['id']}/stop").status_code == 200

    run, _ = run_while(gateway, workflow, stopped_dag.test, operator)

    assert run.state == DagRunState.FAILED  # not left deferred forever, not a silent default
    assert run.get_task_instance("wait_then_stopped").state == TaskInstanceState.FAILED
    assert run.get_task_instance("received").state == TaskInstanceState.UPSTREAM_FAILED


def test_a_refused_wait_fails_the_park_and_leaves_no_execution(
    gateway: GatewayThread,
) -> None:
    where = TaskCoordinates("wg_refused", "manual__1", "bad_wait", -1)
    with pytest.raises(WaitgateError) as refused:
        park(
            Gateway(gateway.url, gateway.admin_key),
            workflow_id="wg_refused.bad_wait",
            custom_data=where.custom_data("operator"),
            wait={"approval": {"description": "no title"}},
        )
    assert refused.value.status == 400
    with gateway.client() as api:  # created and parked in one request: nothing was made
        for status in ("running", "waiting", "canceled"):
            params = {"workflowId": "wg_refused.bad_wait", "status": status}
            assert api.get("/executions", params=params).json()["data"] == []


def test_a_retried_task_takes_the_wait_its_earlier_try_parked(gateway: GatewayThread) -> None:
    """A worker that dies between the park and the deferral: the task's next try finds that
    wait (waiting, then resumed but not yet taken) instead of parking a second one that a
    person might answer in its place. With the key's documented scopes; without
    ``execution:list`` the look is refused."""
    documented = ("execution:write", "execution:read", "execution:list")
    key, no_list = generate_key(), generate_key()
    store, now = gateway.services.store, gateway.clock.now_ms()
    gateway.run(store.create_api_key("airflow", hash_key(key), key[:10], documented, None, now))
    gateway.run(
        store.create_api_key("short", hash_key(no_list), no_list[:10], documented[:2], None, now)
    )
    airflow = Gateway(gateway.url, key)
    custom = TaskCoordinates("wg_retry", "manual__1", "wait", -1).custom_data("operator")
    assert find_parked(airflow, custom) is None

    first = park(airflow, workflow_id="wg_retry.wait", custom_data=custom, wait={"webhook": {}})
    assert find_parked(airflow, custom) == first
    mapped = TaskCoordinates("wg_retry", "manual__1", "wait", 0).custom_data("operator")
    assert find_parked(airflow, mapped) is None  # another task instance's wait is not its own
    with pytest.raises(WaitgateError) as refused:
        find_parked(Gateway(gateway.url, no_list), custom)
    assert refused.value.status == 403

    assert first.link is not None
    assert httpx.get(first.link, timeout=10).status_code == 200  # answered while nobody waits
    answered = find_parked(airflow, custom)  # resumed, its outcome not taken yet: no link
    assert answered == ParkedWait(first.execution_id, first.seq, None, None)
    finish(airflow, first.execution_id, {"taken": True})
    assert find_parked(airflow, custom) is None  # taken: a later try parks anew


def test_a_trigger_whose_execution_is_gone_fires_a_failure_instead_of_reading_forever(
    gateway: GatewayThread,
) -> None:
    trigger = WaitgateTrigger(execution_id=987_654, seq=1, poll_interval=0.01)

    async def first_event() -> Any:
        return await anext(trigger.run())

    event = asyncio.run(asyncio.wait_for(first_event(), 30))
    assert event.payload["status"] == "canceled"
    assert event.payload["error"].startswith("waitgate answered 404")
