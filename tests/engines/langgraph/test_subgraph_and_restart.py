"""An interrupt inside a subgraph is continued through the parent thread; an answer given
while the relay is down continues the thread once the relay is back (waitgate retries); a sync
node asks with ``waitgate_interrupt_sync``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.integrations.langgraph import CHECKPOINTS_ENV, GRAPH_ENV, graph_with_checkpointer
from gateway.integrations.langgraph import relay_adapter as langgraph_relay
from tests.engines.harness import GatewayThread
from tests.engines.langgraph.conftest import World, finished_values, running_world
from tests.engines.relay_socket import deliveries, poll, running_relay

NESTED = "tests.engines.langgraph.graphs:nested"


@pytest.fixture
async def nested_world(
    gateway: tuple[GatewayThread, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[World]:
    """The relay in front of the nested graph."""
    async with running_world(NESTED, gateway, tmp_path / "nested.db", monkeypatch) as found:
        yield found


def thread(name: str) -> dict[str, Any]:
    """The config of one thread."""
    return {"configurable": {"thread_id": name}}


async def test_interrupt_in_a_subgraph_is_continued(nested_world: World) -> None:
    world = nested_world
    out = await world.graph.ainvoke({"order": "S-1"}, thread("t-nested"))
    (pending,) = out["__interrupt__"]
    async with httpx.AsyncClient() as person:
        done = await person.post(pending.value["waitgate"]["url"], data={"decision": "approve"})
        assert done.status_code == 200, done.text

    values = await finished_values(world.graph, "t-nested")
    assert values["answer"] is True
    assert values["log"] == ["asked", "after:form"]


async def test_relay_down_when_answered_continues_after_it_is_back(
    gateway: tuple[GatewayThread, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, port = gateway
    checkpoints = str(tmp_path / "restart.db")
    graph_spec = "tests.engines.langgraph.graphs:builder"
    monkeypatch.setenv("WAITGATE_URL", running.url)
    monkeypatch.setenv("WAITGATE_API_KEY", running.admin_key)
    monkeypatch.setenv("WAITGATE_RELAY_URL", f"http://127.0.0.1:{port}/callbacks")
    monkeypatch.setenv(GRAPH_ENV, graph_spec)
    monkeypatch.setenv(CHECKPOINTS_ENV, checkpoints)
    async with graph_with_checkpointer(graph_spec, checkpoints) as graph:
        out = await graph.ainvoke({"order": "R-1"}, thread("t-restart"))
        link = out["__interrupt__"][0].value["waitgate"]
        async with httpx.AsyncClient() as person:  # nobody listens on the relay's port yet
            done = await person.post(link["url"], data={"decision": "approve"})
            assert done.status_code == 200, done.text

        async def failed_once() -> bool:
            (delivery,) = await deliveries(running, link["executionId"])
            return bool(delivery["attempts"])

        await poll(failed_once, what="the first, refused delivery")
        assert (await graph.aget_state(thread("t-restart"))).next == ("ask",)
        async with running_relay(langgraph_relay, running, port):
            running.advance(10 * 60 * 1000)  # past the retry's backoff

            values = await finished_values(graph, "t-restart")
    assert values["answer"] is True
    assert values["log"] == ["asked", "after:form"]


async def test_sync_node_parks_once_and_is_continued(
    gateway: tuple[GatewayThread, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, port = gateway
    checkpoints = str(tmp_path / "sync.db")
    graph_spec = "tests.engines.langgraph.graphs:synchronous"
    monkeypatch.setenv("WAITGATE_URL", running.url)
    monkeypatch.setenv("WAITGATE_API_KEY", running.admin_key)
    monkeypatch.setenv("WAITGATE_RELAY_URL", f"http://127.0.0.1:{port}/callbacks")
    monkeypatch.setenv(GRAPH_ENV, graph_spec)
    monkeypatch.setenv(CHECKPOINTS_ENV, checkpoints)
    async with (
        running_relay(langgraph_relay, running, port),
        graph_with_checkpointer(graph_spec, checkpoints) as graph,
    ):
        first = await graph.ainvoke({"order": "Y-1"}, thread("t-sync"))
        again = await graph.ainvoke(None, thread("t-sync"))
        link = first["__interrupt__"][0].value["waitgate"]
        assert again["__interrupt__"][0].value["waitgate"] == link
        async with httpx.AsyncClient() as person:
            done = await person.post(link["url"], data={"decision": "reject"})
            assert done.status_code == 200, done.text

        values = await finished_values(graph, "t-sync")
    assert values["answer"] is False
    assert values["log"] == ["asked", "after:form"]
