"""An interrupt inside a subgraph: the relay finds it among the subgraph's pending interrupts
and continues the parent thread."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.integrations.langgraph import CHECKPOINTS_ENV, GRAPH_ENV, graph_with_checkpointer
from gateway.integrations.langgraph import relay_adapter as langgraph_relay
from tests.engines.harness import GatewayThread
from tests.engines.langgraph.conftest import World
from tests.engines.relay_socket import poll, running_relay

NESTED = "tests.engines.langgraph.graphs:nested"


@pytest.fixture
async def nested_world(
    gateway: tuple[GatewayThread, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[World]:
    """The relay in front of the nested graph."""
    running, port = gateway
    checkpoints = tmp_path / "nested.db"
    monkeypatch.setenv("WAITGATE_URL", running.url)
    monkeypatch.setenv("WAITGATE_API_KEY", running.admin_key)
    monkeypatch.setenv("WAITGATE_RELAY_URL", f"http://127.0.0.1:{port}/callbacks")
    monkeypatch.setenv(GRAPH_ENV, NESTED)
    monkeypatch.setenv(CHECKPOINTS_ENV, str(checkpoints))
    async with (
        running_relay(langgraph_relay, running, port) as relay,
        graph_with_checkpointer(NESTED, str(checkpoints)) as graph,
    ):
        yield World(running, relay, graph, checkpoints)


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

    async def finished() -> dict[str, Any] | None:
        snapshot = await world.graph.aget_state(thread("t-nested"))
        return None if snapshot.next else dict(snapshot.values)

    values = await poll(finished, what="the nested thread finishing")
    assert values["answer"] is True
    assert values["log"] == ["asked", "after:form"]
