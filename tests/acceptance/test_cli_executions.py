"""``waitgate executions`` against a real ``waitgate serve``: tables, JSON, actions, errors."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from gateway.cli import main
from tests.acceptance.conftest import SpawnGateway
from tests.receiver import free_port

pytestmark = pytest.mark.acceptance

DUE = "2030-01-01T00:00:00.000Z"
NO_ENV: dict[str, str | None] = {"WAITGATE_URL": None, "WAITGATE_API_KEY": None}
ENGINE = f"http://127.0.0.1:{free_port()}"  # an engine's origin where nothing listens


@dataclass
class Gate:
    """A running gateway: its URL, its admin key, and an HTTP client that sends the key."""

    url: str
    key: str
    http: httpx.Client

    def cli(self, *args: str) -> Result:
        """``waitgate executions ARGS --url … --api-key …`` in-process."""
        return waitgate("executions", *args, "--url", self.url, "--api-key", self.key)

    def create(self, workflow_id: str = "orders", **fields: Any) -> int:
        """A new running execution's id."""
        created = self.http.post("/api/v1/executions", json={"workflowId": workflow_id, **fields})
        assert created.status_code == 201, created.text
        eid: int = created.json()["id"]
        return eid

    def park(self, eid: int, **wait: Any) -> None:
        """Park the execution at a new wait."""
        parked = self.http.post(f"/api/v1/executions/{eid}/wait", json=wait)
        assert parked.status_code == 200, parked.text

    def get(self, eid: int) -> dict[str, Any]:
        """The execution with its data, as the API answers it."""
        answer = self.http.get(f"/api/v1/executions/{eid}", params={"includeData": "true"})
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


def waitgate(*args: str, env: Mapping[str, str | None] | None = None) -> Result:
    """Run ``waitgate ARGS`` in-process, with no connection settings from the environment."""
    return CliRunner().invoke(main, list(args), env={**NO_ENV, **(env or {})})


def rows(result: Result) -> list[list[str]]:
    """The table rows of ``executions list`` (header left out), cells split on column gaps."""
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    assert header.split() == [
        "ID",
        "STATUS",
        "WORKFLOW",
        "STARTED",
        "WAIT",
        "TILL",
        "CUSTOM",
        "DATA",
    ]
    return [re.split(r"\s{2,}", line) for line in lines if not line.startswith("next page:")]


def next_cursor(result: Result) -> str | None:
    """The cursor of the hint line that ends ``executions list``, if there is one."""
    last = result.stdout.splitlines()[-1]
    return last.removeprefix("next page: --cursor ") if last.startswith("next page:") else None


def failed(result: Result, exit_code: int = 1) -> str:
    """stderr of a run that failed cleanly (no traceback, nothing on stdout)."""
    assert result.exit_code == exit_code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    return result.stderr


@pytest.fixture
def gate(spawn_gateway: SpawnGateway) -> Iterator[Gate]:
    """A gateway that may call back engines on loopback (nothing listens there)."""
    gateway = spawn_gateway({"WAITGATE_CALLBACK_ALLOWED_ORIGINS": ENGINE})
    (key,) = gateway.admin_keys()
    with httpx.Client(base_url=gateway.url, headers={"X-N8N-API-KEY": key}, timeout=10) as http:
        yield Gate(gateway.url, key, http)


def test_list_prints_a_table_filters_and_pages(gate: Gate) -> None:
    timed = gate.create(customData={"orderId": "A-1"})
    gate.park(timed, waitTill=DUE)
    hooked = gate.create(customData={"orderId": "A-2", "note": "x" * 60})
    gate.park(hooked, webhook={})
    running = gate.create("refunds")
    started = {eid: gate.get(eid)["startedAt"] for eid in (timed, hooked, running)}

    listed = gate.cli("list")
    assert rows(listed) == [
        [
            str(hooked),
            "waiting",
            "orders",
            started[hooked],
            "no limit",
            f"orderId=A-2, note={'x' * 19}...",
        ],
        [str(timed), "waiting", "orders", started[timed], DUE, "orderId=A-1"],
    ], "newest first; running executions only when asked for"
    assert next_cursor(listed) is None

    first = gate.cli("list", "--limit", "1")
    assert [row[0] for row in rows(first)] == [str(hooked)]
    cursor = next_cursor(first)
    assert cursor is not None
    second = gate.cli("list", "--cursor", cursor)
    assert [row[0] for row in rows(second)] == [str(timed)]
    assert next_cursor(second) is None

    assert [row[0] for row in rows(gate.cli("list", "--custom-data", "orderId=A-1"))] == [
        str(timed)
    ]
    only_running = gate.cli("list", "--status", "running", "--workflow-id", "refunds")
    assert rows(only_running) == [[str(running), "running", "refunds", started[running], "-"]]
    none = gate.cli("list", "--workflow-id", "nothing-here")
    assert (none.exit_code, none.stdout) == (0, "no executions found\n")

    as_json = gate.cli("list", "--json", "--limit", "1")
    assert as_json.exit_code == 0, as_json.output
    page = gate.http.get("/api/v1/executions", params={"limit": "1"}).json()
    assert json.loads(as_json.stdout) == page
    assert page["nextCursor"] == cursor

    from_env = waitgate(
        "executions", "list", env={"WAITGATE_URL": gate.url, "WAITGATE_API_KEY": gate.key}
    )
    assert from_env.stdout == listed.stdout


def test_show_prints_waits_deliveries_and_custom_data(gate: Gate) -> None:
    eid = gate.create(customData={"orderId": "A-7"}, callbackUrl=f"{ENGINE}/")
    gate.park(eid, waitTill=DUE)
    resumed = gate.http.post(f"/api/v1/executions/{eid}/resume", json={"data": {"ok": True}})
    assert resumed.status_code == 200, resumed.text
    gate.park(eid, webhook={})
    execution = gate.get(eid)
    first, second = execution["data"]["waits"]
    (delivery,) = gate.http.get(f"/api/v1/executions/{eid}/deliveries").json()["data"]

    shown = gate.cli("show", str(eid))
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0] == f"execution {eid}  waiting"
    assert "  workflow        orders" in lines
    assert f"  started         {execution['startedAt']}" in lines
    assert "  waitTill        no limit" in lines
    assert "  retryOf         -" in lines
    assert f"  resumeUrl       {execution['resumeUrl']}" in lines
    custom_at = lines.index("customData")
    assert lines[custom_at + 1] == "  orderId  A-7"
    waits_at = lines.index("waits")
    assert lines[waits_at + 1].split() == ["SEQ", "PARKED", "DUE", "RESUMED", "AT", "RESUMED", "BY"]
    assert lines[waits_at + 2].split() == ["1", first["parkedAt"], DUE, first["resumedAt"], "api"]
    assert lines[waits_at + 3].split() == ["2", second["parkedAt"], "no", "limit", "-", "-"]
    deliveries_at = lines.index("deliveries")
    assert lines[deliveries_at + 1].split()[:4] == ["ID", "EVENT", "STATUS", "ATTEMPTS"]
    assert lines[deliveries_at + 2].split()[:2] == [delivery["id"], "execution.resumed"]

    as_json = gate.cli("show", str(eid), "--json")
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == gate.get(eid)

    bare = gate.create("bare")
    bare_lines = gate.cli("show", str(bare)).stdout.splitlines()
    assert bare_lines[0] == f"execution {bare}  running"
    assert bare_lines[-3:] == ["customData: none", "waits: none", "deliveries: none"]


def test_stop_retry_and_resume_act_through_the_api(gate: Gate) -> None:
    waiting = gate.create()
    gate.park(waiting, waitTill=DUE)
    resumed = gate.cli("resume", str(waiting), "--data", '{"approved": true}')
    assert resumed.exit_code == 0, resumed.output
    after = gate.get(waiting)
    wait = after["data"]["waits"][-1]
    assert after["status"] == "running"
    assert (wait["resumedBy"], wait["payload"]["body"]) == ("api", {"approved": True})
    assert resumed.stdout == (
        f"execution {waiting}  running  workflow orders  resumed by api at {wait['resumedAt']}\n"
    )
    again = failed(gate.cli("resume", str(waiting)))
    assert f"Only waiting executions can be resumed; {waiting} is currently running" in again
    bad_data = failed(gate.cli("resume", str(waiting), "--data", "{approved"), exit_code=2)
    assert "Invalid value for '--data': not valid JSON" in bad_data

    parked = gate.create()
    gate.park(parked, webhook={})
    stopped = gate.cli("stop", str(parked))
    assert stopped.exit_code == 0, stopped.output
    canceled = gate.get(parked)
    assert (canceled["status"], canceled["waitTill"]) == ("canceled", None)
    assert stopped.stdout == (
        f"execution {parked}  canceled  workflow orders  stopped {canceled['stoppedAt']}\n"
    )

    retried = gate.cli("retry", str(parked), "--json")
    assert retried.exit_code == 0, retried.output
    retry = json.loads(retried.stdout)
    assert (retry["status"], retry["mode"], retry["retryOf"]) == ("running", "retry", parked)
    assert gate.get(retry["id"])["retryOf"] == parked
    plain = gate.cli("retry", str(parked))
    found = re.fullmatch(
        rf"execution (\d+)  running  workflow orders  retry of {parked}\n", plain.stdout
    )
    assert found is not None, plain.output
    assert gate.get(int(found.group(1)))["retryOf"] == parked

    not_stoppable = failed(gate.cli("stop", str(parked)))
    assert f"{parked} is currently canceled" in not_stoppable
    not_retryable = failed(gate.cli("retry", str(waiting)))
    assert f"{waiting} is currently running" in not_retryable


def test_gateway_errors_exit_1_with_the_gateways_message(gate: Gate) -> None:
    for command in ("show", "stop", "retry", "resume"):
        stderr = failed(gate.cli(command, "987654"))
        assert 'The execution "987654" does not exist. (HTTP 404)' in stderr, command
    wrong_key = waitgate("executions", "list", "--url", gate.url, "--api-key", "wg_not_a_key")
    assert "Unauthorized (HTTP 401)" in failed(wrong_key)


def test_a_missing_key_or_an_unreachable_gateway_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for env in ({}, {"WAITGATE_API_KEY": ""}):
        missing = waitgate("executions", "list", "--url", url, env=env)
        assert "an API key is required: pass --api-key or set WAITGATE_API_KEY" in failed(
            missing, exit_code=2
        )
    unreachable = waitgate("executions", "show", "1", "--url", url, "--api-key", "wg_key")
    assert f"Error: cannot reach the gateway at {url}: " in failed(unreachable)
    from_env = waitgate(
        "executions", "stop", "1", env={"WAITGATE_URL": url, "WAITGATE_API_KEY": "wg_key"}
    )
    assert f"cannot reach the gateway at {url}" in failed(from_env)
