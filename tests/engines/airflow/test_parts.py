"""The Airflow adapter's parts, without a DAG run: the option mapping both sides share, the
connection, the trigger's round trip through ``serialize()``, the notifier's refusals, the relay
adapter's choices, and the example DAGs as Airflow parses them."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from gateway.integrations.airflow.connection import base_url, gateway_of, relay_url_of
from gateway.integrations.airflow.hitl_options import approval_fields, chosen_options
from gateway.integrations.airflow.hitl_relay import AirflowApi, AirflowHitlAdapter, hitl_path
from gateway.integrations.airflow.notifier import WaitgateNotifier, approver
from gateway.integrations.airflow.triggers import WaitgateTrigger
from gateway.integrations.airflow.waitgate_api import outcome_of
from gateway.integrations.relay import Callback

EXAMPLES = Path(__file__).parents[3] / "examples" / "airflow" / "dags"


def connection(**fields: Any) -> SimpleNamespace:
    values: dict[str, Any] = {"host": None, "schema": None, "port": None, "password": None}
    values["extra_dejson"] = {}
    return SimpleNamespace(**(values | fields))


def test_the_connection_names_waitgate_and_the_relay() -> None:
    full = connection(host="https://wg.example.com/", password="wg_1")
    assert base_url(full) == "https://wg.example.com"
    assert base_url(connection(host="wg", port=5678)) == "http://wg:5678"
    assert base_url(connection(host="wg", schema="https")) == "https://wg"
    assert gateway_of(full).headers == {"X-N8N-API-KEY": "wg_1"}
    assert relay_url_of(connection(extra_dejson={"relay_url": "http://r/"})) == "http://r/"
    with pytest.raises(ValueError, match="API key"):
        gateway_of(connection(host="http://wg"))
    with pytest.raises(ValueError, match="http"):
        gateway_of(connection(host="ftp://wg", password="k"))


def test_the_trigger_comes_back_from_its_serialized_form() -> None:
    trigger = WaitgateTrigger(execution_id=7, seq=2, waitgate_conn_id="wg", poll_interval=1.0)
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert kwargs == {
        "execution_id": 7,
        "seq": 2,
        "waitgate_conn_id": "wg",
        "poll_interval": 1.0,
        "max_poll_interval": 60.0,
    }


def test_a_wait_ends_only_when_its_own_seq_resumed() -> None:
    open_wait = {"status": "waiting", "data": {"waits": [{"seq": 1, "resumedAt": None}]}}
    assert outcome_of(open_wait, 1) is None
    resumed = {
        "status": "running",
        "data": {"waits": [{"seq": 1, "resumedAt": "x", "resumedBy": "form", "payload": {"a": 1}}]},
    }
    outcome = outcome_of(resumed, 1)
    assert outcome is not None
    assert (outcome.status, outcome.resumed_by, outcome.payload) == ("resumed", "form", {"a": 1})
    stopped = {"status": "canceled", "data": {"waits": [{"seq": 1, "resumedAt": None}]}}
    ended = outcome_of(stopped, 1)
    assert ended is not None
    assert ended.status == "canceled"


def test_options_map_to_waitgate_and_back() -> None:
    options = ["Approve", "Reject"]
    assert approval_fields(options, multiple=False, named_approvers=False) == {}
    named = approval_fields(["Sea", "Air", "Reject"], multiple=True, named_approvers=True)
    assert named == {"options": ["Sea", "Air", "reject"], "multiple": True}
    assert chosen_options(options, {"approved": True, "comment": ""}) == ["Approve"]
    assert chosen_options(options, {"approved": False}) == ["Reject"]
    routes = ["Sea", "Air", "Reject"]
    assert chosen_options(routes, {"approved": True, "option": "Air"}) == ["Air"]
    assert chosen_options(routes, {"approved": True, "options": ["Sea", "Air"]}) == ["Sea", "Air"]
    assert chosen_options(routes, {"approved": None, "timedOut": True}) is None
    assert chosen_options(["Sea", "Air"], {"approved": False}) is None  # nothing rejects


@pytest.mark.parametrize(
    ("options", "multiple", "message"),
    [
        (["Sea", "Air"], False, "need named approvers"),
        (["Approve", "Reject"], True, "need named approvers"),
        (["Reject"], False, "one that approves"),
        (["reject", "REJECT"], False, "not distinct"),
        (["x" * 65], False, "1 to 64"),
    ],
)
def test_options_waitgate_cannot_show_are_refused(
    options: list[str], multiple: bool, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        approval_fields(options, multiple=multiple, named_approvers=False)


def test_the_notifier_builds_the_approval_and_refuses_bad_approvers() -> None:
    task = SimpleNamespace(
        subject="Ship?",
        body="Two pallets.",
        options=["Approve", "Reject"],
        multiple=False,
        assigned_users=[{"id": "ana@example.com", "name": "Ana"}],
    )
    body = WaitgateNotifier(channels=["mail"], approval={"required": 1}).approval_body(task)
    assert body == {
        "title": "Ship?",
        "description": "Two pallets.",
        "approvers": [{"id": "ana@example.com", "name": "Ana", "email": "ana@example.com"}],
        "channels": ["mail"],
        "options": ["Approve", "reject"],
        "multiple": False,
        "required": 1,
    }
    with pytest.raises(ValueError, match="approver id"):
        approver({"id": "ana smith"})
    alone = SimpleNamespace(**{**vars(task), "assigned_users": None})
    with pytest.raises(ValueError, match="channels tell named approvers"):
        WaitgateNotifier(channels=["mail"]).approval_body(alone)


def test_the_relay_path_escapes_the_task_coordinates() -> None:
    custom = {
        "airflow_dagId": "d",
        "airflow_runId": "manual__2026-01-01T00:00:00+00:00",
        "airflow_taskId": "t",
        "airflow_mapIndex": "3",
    }
    assert hitl_path(custom) == (
        "/dags/d/dagRuns/manual__2026-01-01T00%3A00%3A00%2B00%3A00/taskInstances/t/3/hitlDetails"
    )


def test_the_relay_leaves_other_executions_alone_and_fails_loudly_for_airflow() -> None:
    """A callback of a deferrable-operator execution is acknowledged without calling Airflow;
    a HITL callback Airflow cannot take raises (the relay answers 503 and waitgate retries)."""
    calls: list[str] = []

    def airflow(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        return httpx.Response(503, text="down")

    def callback(kind: str) -> Callback:
        custom = {
            "airflow_kind": kind,
            "airflow_dagId": "d",
            "airflow_runId": "r",
            "airflow_taskId": "t",
            "airflow_mapIndex": "-1",
        }
        body = {"data": {"executionId": 1, "customData": custom}, "type": "execution.resumed"}
        return Callback("m", "execution.resumed", 1, "w", custom, "form", {}, 1, body)

    async def scenario() -> None:
        transport = httpx.MockTransport(airflow)
        async with httpx.AsyncClient(transport=transport) as http:
            adapter = AirflowHitlAdapter(AirflowApi(http, "http://airflow", token="t"))
            await adapter.resumed(callback("operator"))
            assert calls == []
            with pytest.raises(Exception, match="503"):
                await adapter.resumed(callback("hitl"))

    asyncio.run(scenario())
    assert calls == ["GET /api/v2/dags/d/dagRuns/r/taskInstances/t/-1/hitlDetails"]


def test_the_example_dags_parse(airflow_db: object) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLES))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"waitgate_refund", "waitgate_shipment"}


def test_the_relay_logs_in_again_once_when_its_token_expires() -> None:
    """A 401 with a username and password: one new login, the call again; a refused login is
    an error (503 to waitgate, which retries), never a loop."""
    seen: list[str] = []
    logins = iter(["first", "second"])

    def airflow(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path} {request.headers.get('authorization')}")
        if request.url.path == "/auth/token":
            token = next(logins, None)
            if token is None:
                return httpx.Response(401, text="bad password")
            return httpx.Response(201, json={"access_token": token})
        if request.headers["authorization"] == "Bearer first":
            return httpx.Response(401, text="expired")
        return httpx.Response(200, json={"ok": True})

    async def scenario() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(airflow)) as http:
            api = AirflowApi(http, "http://airflow/", username="waitgate", password="pw")
            assert (await api.request("GET", "/x")).status_code == 200
            with pytest.raises(ValueError, match="token, or a username"):
                AirflowApi(http, "http://airflow")
            again = AirflowApi(http, "http://airflow", username="waitgate", password="pw")
            with pytest.raises(Exception, match="refused the login"):
                await again.request("GET", "/x")

    asyncio.run(scenario())
    assert seen == [
        "POST /auth/token None",
        "GET /api/v2/x Bearer first",
        "POST /auth/token None",
        "GET /api/v2/x Bearer second",
        "POST /auth/token None",
    ]
