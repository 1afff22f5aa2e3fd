"""A thread that fails after taking its answer ends its execution in ``error``, once: the
relay reports the failure to waitgate instead of asking for retries that could only find the
interrupt answered already (and leave the execution ``running`` for good)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.engines.harness import GatewayThread
from tests.engines.langgraph.conftest import World, running_world
from tests.engines.langgraph.graphs import OUTAGE
from tests.engines.langgraph.test_langgraph import api
from tests.engines.relay_socket import deliveries, poll

BREAKING = "tests.engines.langgraph.graphs:breaking"


@pytest.fixture
async def breaking_world(
    gateway: tuple[GatewayThread, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[World]:
    """The relay in front of the graph whose node after the question fails."""
    async with running_world(BREAKING, gateway, tmp_path / "breaking.db", monkeypatch) as found:
        yield found


async def _ended(world: World, execution_id: int) -> dict[str, Any] | None:
    async with await api(world) as client:
        answer = await client.get(f"/executions/{execution_id}", params={"includeData": "true"})
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return None if found["status"] in ("waiting", "running") else found


async def test_a_node_failing_after_the_answer_ends_the_execution_in_error(
    breaking_world: World,
) -> None:
    world = breaking_world
    config = {"configurable": {"thread_id": "t-outage"}}
    out = await world.graph.ainvoke({"order": "E-1", "kind": "webhook"}, config)
    (pending,) = out["__interrupt__"]
    asked = pending.value["waitgate"]
    async with httpx.AsyncClient() as partner:
        called = await partner.post(asked["resumeUrl"], json={"carrier": "DHL"})
        assert called.status_code == 200, called.text

    ended = await poll(lambda: _ended(world, asked["executionId"]), what="the execution ending")
    assert ended["status"] == "error"
    error = ended["data"]["error"]
    assert error["message"] == OUTAGE
    assert error["type"] == "RuntimeError"
    assert ended["data"]["result"] == {"threadId": "t-outage"}
    # The callback was answered once: the failure is in waitgate, not in a retry loop.
    (delivery,) = await deliveries(world.gateway, asked["executionId"])
    assert delivery["status"] == "delivered"
    assert len(delivery["attempts"]) == 1
    # The thread kept the answer and stopped at the failing node, for its owner to run again.
    snapshot = await world.graph.aget_state(config)
    assert snapshot.values["answer"] == {"carrier": "DHL"}
    assert snapshot.next == ("after",)
