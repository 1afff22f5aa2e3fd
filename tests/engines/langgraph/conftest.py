"""LangGraph engine tests: a real waitgate in a thread, the relay on a socket in the test's
loop loading ``graphs:builder`` as ``waitgate relay --engine langgraph`` does, and the test's
own copy of the graph on the same SQLite checkpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph", reason="LangGraph is not installed: make test-engine-langgraph")
pytest.importorskip(
    "langgraph.checkpoint.sqlite",
    reason="langgraph-checkpoint-sqlite is not installed: make test-engine-langgraph",
)

from gateway.integrations.langgraph import (
    CHECKPOINTS_ENV,
    GRAPH_ENV,
    graph_with_checkpointer,
    relay_adapter,
)
from tests.engines.harness import GatewayThread
from tests.engines.relay_socket import RelaySocket, poll, relay_origin, running_relay

GRAPH = "tests.engines.langgraph.graphs:builder"


@dataclass
class World:
    """The gateway, the relay in front of the graph, and the graph the test drives."""

    gateway: GatewayThread
    relay: RelaySocket
    graph: Any
    checkpoints: Path


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[GatewayThread, int]]:
    """waitgate, allowed to call back the relay's port."""
    port, origin = relay_origin()
    with GatewayThread(tmp_path, allowed_origins=(origin,)) as running:
        yield running, port


@asynccontextmanager
async def running_world(
    graph_path: str,
    gateway: tuple[GatewayThread, int],
    checkpoints: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[World]:
    """The relay in front of the graph at ``graph_path`` (``module:attr``) on a SQLite
    checkpointer, configured through the environment as a user would."""
    running, port = gateway
    monkeypatch.setenv("WAITGATE_URL", running.url)
    monkeypatch.setenv("WAITGATE_API_KEY", running.admin_key)
    monkeypatch.setenv("WAITGATE_RELAY_URL", f"http://127.0.0.1:{port}/callbacks")
    monkeypatch.setenv(GRAPH_ENV, graph_path)
    monkeypatch.setenv(CHECKPOINTS_ENV, str(checkpoints))
    async with (
        running_relay(relay_adapter, running, port) as relay,
        graph_with_checkpointer(graph_path, str(checkpoints)) as graph,
    ):
        yield World(running, relay, graph, checkpoints)


@pytest.fixture
async def world(
    gateway: tuple[GatewayThread, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[World]:
    """Everything running around the refund graph."""
    async with running_world(GRAPH, gateway, tmp_path / "checkpoints.db", monkeypatch) as found:
        yield found


async def finished_values(graph: Any, thread_id: str) -> dict[str, Any]:
    """The thread's values once ``after`` has run (a snapshot read while the relay is between
    saving a task's writes and the next checkpoint can look finished before it is)."""

    async def done() -> dict[str, Any] | None:
        snapshot = await graph.aget_state({"configurable": {"thread_id": thread_id}})
        values = dict(snapshot.values)
        log = values.get("log") or [""]
        return None if snapshot.next or not log[-1].startswith("after:") else values

    found: dict[str, Any] = await poll(done, what=f"thread {thread_id} finishing")
    return found
