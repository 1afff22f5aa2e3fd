"""Every entry point goes through the use cases: the same metrics, log lines and answers.

A wait resumed from the dashboard, an approval page, a form page or by an event (inbound,
published, replayed, or kept and applied at park) counts in ``waitgate_resumes_total`` and
logs ``wait.resumed`` as one resumed by the API does, and the caller held by the previous wait
(lastNode) gets its answer on the way there. No route calls a transition verb of the store
itself, and a refused transition is explained by the state that refused it, read in the same
transaction.
"""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gateway.domain import NewExecution, ResumedBy, Status, Unchanged, WebhookSpec
from gateway.services import Services
from persistence.base import Store
from tests.api.test_metrics import scrape
from tests.api.test_response_modes import held_call
from tests.api.test_ui import csrf, signed_in
from tests.conftest import create, get, park

ROOT = Path(__file__).resolve().parents[2]
NOW = 1_800_000_000_000
HOOK = WebhookSpec(methods=("POST",))
ON_EVENT = {"events": [{"source": "orders", "match": {"n": "1"}}]}
ENTRY_POINTS: dict[str, tuple[dict[str, Any], str]] = {
    "api": ({"webhook": {"httpMethod": "POST"}}, "api"),
    "dashboard": ({"webhook": {"httpMethod": "POST"}}, "api"),
    "approval": ({"approval": {"title": "Buy a laptop?"}}, "form"),
    "form": (
        {"form": {"title": "Name", "fields": [{"label": "Name", "name": "name", "type": "text"}]}},
        "form",
    ),
    "inbound event": (ON_EVENT, "event"),
    "published event": (ON_EVENT, "event"),
    "replayed event": (ON_EVENT, "event"),
    "event kept for the park": (ON_EVENT, "event"),
}
"""What the second wait is, and the ``by`` label its resume counts under."""
ONE = {"n": "1"}
TRANSITIONS = {
    "create_execution",
    "retry_execution",
    "finish",
    "stop",
    "stop_many",
    "delete_execution",
    "park",
    "resume",
    "resume_by_call",
    "record_early_resume",
    "put_held_answer",
    "put_idempotent_answer",
    "record_event",
    "replay_event",
}


async def _before_the_park(entry: str, client: httpx.AsyncClient) -> int | None:
    """An event source for the event entry points, and the event kept before the park for
    those that use one (its id)."""
    if "event" not in entry:
        return None
    source: dict[str, Any] = {
        "name": "orders",
        "verify": {"type": "none", "allowedIps": ["127.0.0.0/8"]},
    }
    if entry == "replayed event":
        source["lookbackSeconds"] = 0  # kept, but not applied at park
    assert (await client.post("/api/v1/event-sources", json=source)).status_code == 201
    if entry not in {"replayed event", "event kept for the park"}:
        return None
    kept = await client.post("/api/v1/events", json={"source": "orders", "data": ONE})
    assert kept.json()["matched"] == 0
    event_id: int = kept.json()["id"]
    return event_id


async def _resume_through(
    entry: str,
    app: Starlette,
    client: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    wait: Any,
    kept: int | None,
) -> None:
    """Resume the execution's current wait through one entry point."""
    eid = wait["id"]
    if entry == "event kept for the park":
        assert wait["status"] == "running"  # the park applied it
    elif entry == "inbound event":
        assert (await anon.post("/events/orders", json=ONE)).json() == {"matched": 1}
    elif entry == "published event":
        published = await client.post("/api/v1/events", json={"source": "orders", "data": ONE})
        assert published.json()["matched"] == 1
    elif entry == "replayed event":
        replayed = await client.post(f"/api/v1/events/{kept}/replay")
        assert replayed.json()["matched"] == 1
    elif entry == "api":
        answer = await client.post(f"/api/v1/executions/{eid}/resume", json={"data": {"ok": 1}})
        assert answer.status_code == 200, answer.text
    elif entry == "dashboard":
        ui = await signed_in(app, client.headers["x-n8n-api-key"])
        token = csrf((await ui.get(f"/ui/executions/{eid}")).text)
        answer = await ui.post(f"/ui/executions/{eid}/resume", data={"csrf": token})
        assert answer.status_code == 303
        assert answer.headers["location"].endswith("done=resume-done")
    elif entry == "approval":
        answer = await anon.post(wait["approvalUrl"], data={"decision": "approve"})
        assert answer.status_code == 200, answer.text
    else:
        answer = await anon.post(wait["resumeFormUrl"], data={"name": "Ada"})
        assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("entry", ENTRY_POINTS)
async def test_every_entry_point_counts_logs_and_answers_the_held_caller(
    entry: str,
    app: Starlette,
    client: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    svc: Services,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="waitgate")
    second_wait, label = ENTRY_POINTS[entry]
    kept = await _before_the_park(entry, client)
    execution = await create(client)
    eid = execution["id"]
    first = await park(client, eid, webhook={"httpMethod": "POST", "responseMode": "lastNode"})
    call = await held_call(anon, svc, eid, first["resumeUrl"])
    assert not call.done()

    before = await scrape(client)
    caplog.clear()
    second = await park(client, eid, **second_wait)
    held = await asyncio.wait_for(call, 5)
    assert held.status_code == 200
    assert held.json() == {
        "id": eid,
        "status": second["status"],
        "waitTill": second["waitTill"],
        "resumeUrl": second.get("resumeUrl"),
    }
    await _resume_through(entry, app, client, anon, second, kept)
    after = await scrape(client)

    key = ("waitgate_resumes_total", (("by", label),))
    assert after.get(key, 0.0) - before.get(key, 0.0) == 1
    logged = [
        r
        for r in caplog.records
        if getattr(r, "action", None) == "wait.resumed" and getattr(r, "execution_id", None) == eid
    ]
    assert len(logged) == 1
    resumed = await get(client, eid, includeData="true")
    assert resumed["status"] == "running"
    assert resumed["data"]["waits"][1]["resumedBy"] == ResumedBy(label).value


async def test_a_page_rejection_that_cancels_logs_the_stop(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="waitgate")
    execution = await create(client)
    wait = await park(client, execution["id"], approval={"title": "Go?", "onReject": "cancel"})
    sure = {"decision": "reject", "sure": "yes"}  # a cancelling reject is confirmed first
    answer = await anon.post(wait["approvalUrl"], data=sure)
    assert answer.status_code == 200
    actions = {getattr(r, "action", None) for r in caplog.records}
    assert {"execution.stopped", "approval.answered"} <= actions
    assert (await get(client, execution["id"]))["status"] == "canceled"


async def test_a_refused_transition_says_which_state_refused_it(store: Store) -> None:
    eid = (await store.create_execution(NewExecution("wf"), NOW)).id
    assert await store.park(eid, None, HOOK, NOW)
    assert await store.stop(eid, NOW + 1)
    for refused in (
        await store.resume(eid, 1, ResumedBy.API, None, NOW + 2),
        await store.stop(eid, NOW + 2),
        await store.finish(eid, Status.SUCCESS, None, None, NOW + 2),
        await store.park(eid, None, HOOK, NOW + 2),
        await store.retry_execution(eid, NOW + 2),
    ):
        if isinstance(refused, Unchanged):
            assert refused.execution is not None
            assert refused.execution.status is Status.CANCELED
            assert not refused
        else:  # a canceled execution may be retried
            assert refused is not None
    gone = await store.stop(999_999, NOW)
    assert isinstance(gone, Unchanged)
    assert gone.execution is None


def test_no_route_calls_a_transition_verb_of_the_store() -> None:
    for path in [*sorted((ROOT / "gateway" / "routes").glob("*.py")), ROOT / "gateway/pages.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in TRANSITIONS
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "store"
            ):
                raise AssertionError(f"{path.name}:{node.lineno} calls store.{node.attr}")
