"""LangGraph: ``interrupt()`` answered through waitgate, and the relay that resumes the thread.

Inside a node (the graph compiled with a checkpointer)::

    answer = await waitgate_interrupt(Approval("Refund 120 EUR?", default=False,
                                               deadline=timedelta(hours=4)))
    if answer.approved: ...

The first run parks a waitgate execution (customData ``langgraph_threadId`` and
``langgraph_interruptId``, callbacks to ``WAITGATE_RELAY_URL``) and interrupts the graph; the
caller sees ``{"waitgate": {"url": <the page to answer>, …}, "title": …}`` in
``__interrupt__``. LangGraph runs the node again from its start when the thread resumes: the
helper then returns the ``Answer`` without parking again. A re-run that finds the interrupt
still unanswered (a crash after parking) reuses the execution it parked, found by its
customData.

The relay (``waitgate relay --engine langgraph``, adapter from ``relay_adapter()``) loads the
compiled graph from ``WAITGATE_LANGGRAPH_GRAPH=module:attribute`` with a SQLite checkpointer at
``WAITGATE_LANGGRAPH_CHECKPOINTS`` (a file path) and continues the thread with
``Command(resume={interrupt_id: answer})`` when the execution is resumed, or with the
default at the deadline, or with a canceled answer when it is stopped. An interrupt that is
no longer pending (a duplicate callback, a thread resumed some other way) is left alone. A
thread that fails once it has the answer ends its execution in ``error`` (the exception's type
and message); the thread stays at the failing node for its owner to run again.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import zlib
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol

from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.config import get_config
from langgraph.errors import GraphInterrupt
from langgraph.types import Command, Interrupt, interrupt

from gateway.client import WaitgateClient, WaitgateError
from gateway.integrations.asks import (
    Answer,
    Ask,
    GatewayLink,
    Parked,
    answer,
    default_of,
    find_parked,
    park,
)

if TYPE_CHECKING:
    from gateway.integrations.relay import Callback

__all__ = ["LangGraphAdapter", "relay_adapter", "waitgate_interrupt", "waitgate_interrupt_sync"]

ENGINE = "langgraph"
THREAD_KEY = "langgraph_threadId"
INTERRUPT_KEY = "langgraph_interruptId"
GRAPH_ENV = "WAITGATE_LANGGRAPH_GRAPH"
CHECKPOINTS_ENV = "WAITGATE_LANGGRAPH_CHECKPOINTS"
MAX_CUSTOM_VALUE = 255
LOCK_STRIPES = 64
"""Callbacks of one thread are handled one at a time (threads share 64 locks, so the relay's
memory does not grow with the threads it has seen)."""

log = logging.getLogger("waitgate.langgraph")


class Graph(Protocol):
    """The parts of a compiled LangGraph graph (``Pregel``) the relay uses."""

    async def ainvoke(self, input: Any, config: Any = None) -> Any:
        """Run (or continue) the thread named in ``config``."""

    async def aget_state(self, config: Any, *, subgraphs: bool = False) -> Any:
        """The thread's current state snapshot."""


def _interrupt_value(parked: Parked, ask: Ask) -> dict[str, Any]:
    """What the caller of the graph sees in ``__interrupt__`` (and the relay reads back)."""
    value: dict[str, Any] = {
        "waitgate": {
            "executionId": parked.execution_id,
            "kind": parked.kind,
            "url": parked.url,
            "resumeUrl": parked.resume_url,
            "deadline": parked.deadline,
        },
        "default": default_of(ask),
    }
    title = getattr(ask, "title", None)
    if title:
        value["title"] = title
    description = getattr(ask, "description", None)
    if description:
        value["description"] = description
    return value


async def _park_once(
    link: GatewayLink, ask: Ask, workflow_id: str, thread_id: str, interrupt_id: str
) -> Parked:
    keys = {THREAD_KEY: thread_id, INTERRUPT_KEY: interrupt_id}
    async with link.client() as gate:
        found = await find_parked(gate, ask.kind, keys)
        if found is not None:
            return found
        custom = {"waitgate_engine": ENGINE, **keys}
        return await park(
            gate, ask, workflow_id=workflow_id, custom_data=custom, callback_url=link.relay_url
        )


async def waitgate_interrupt(
    ask: Ask, *, link: GatewayLink | None = None, workflow_id: str = ENGINE
) -> Answer:
    """Park ``ask`` in waitgate and interrupt the graph; on resume, the ``Answer``.

    Call it in an async node of a graph compiled with a checkpointer, run with a
    ``thread_id``. ``link`` defaults to ``GatewayLink.from_env()``. A resume value given
    directly (``Command(resume=…)`` not from the relay) comes back as the answer's value.
    """
    try:
        resumed = interrupt({"waitgate": "parking"})
    except GraphInterrupt as pending:
        interrupts: tuple[Any, ...] = tuple(pending.args[0]) if pending.args else ()
        if len(interrupts) != 1:
            raise
        interrupt_id: str = interrupts[0].id
        thread_id = str(get_config()["configurable"].get("thread_id", ""))
        if not thread_id or len(thread_id) > MAX_CUSTOM_VALUE:
            raise ValueError(
                f"waitgate_interrupt needs a thread_id of 1 to {MAX_CUSTOM_VALUE} characters"
            ) from None
        parked = await _park_once(
            link or GatewayLink.from_env(), ask, workflow_id, thread_id, interrupt_id
        )
        raise GraphInterrupt(
            (Interrupt(value=_interrupt_value(parked, ask), id=interrupt_id),)
        ) from None
    if Answer.is_json(resumed):
        return Answer.from_json(resumed)
    return Answer(resumed, "langgraph", 0, resumed)


def waitgate_interrupt_sync(
    ask: Ask, *, link: GatewayLink | None = None, workflow_id: str = ENGINE
) -> Answer:
    """``waitgate_interrupt`` for a sync node (LangGraph runs those where no event loop runs,
    under ``invoke`` and ``ainvoke`` alike)."""
    return asyncio.run(waitgate_interrupt(ask, link=link, workflow_id=workflow_id))


def _pending_interrupts(snapshot: Any) -> dict[str, Any]:
    """Every interrupt still waiting for an answer in a thread (subgraphs' too), by id."""
    found: dict[str, Any] = {}
    for pending in getattr(snapshot, "interrupts", ()) or ():
        found[pending.id] = pending.value
    for task in getattr(snapshot, "tasks", ()) or ():
        for pending in task.interrupts or ():
            found[pending.id] = pending.value
        if task.state is not None and not isinstance(task.state, Mapping):
            found.update(_pending_interrupts(task.state))
    return found


class LangGraphAdapter:
    """The relay's LangGraph adapter: continues the thread an execution was parked for.

    ``client`` (optional) finishes the execution in waitgate once the thread has taken the
    answer: ``success``, or ``error`` if the thread failed (without a client, a failure is
    answered 503, as before). One thread is continued by one callback at a time.
    """

    def __init__(self, graph: Graph, client: WaitgateClient | None = None) -> None:
        self.graph = graph
        self.client = client
        self._locks = tuple(asyncio.Lock() for _ in range(LOCK_STRIPES))

    async def resumed(self, callback: Callback) -> None:
        """Continue the thread with the answer (the default at the deadline)."""
        await self._continue(callback, canceled=False)

    async def canceled(self, callback: Callback) -> None:
        """Continue the thread with a canceled answer (an approval is rejected)."""
        await self._continue(callback, canceled=True)

    async def _continue(self, callback: Callback, *, canceled: bool) -> None:
        thread_id = callback.custom_data.get(THREAD_KEY)
        interrupt_id = callback.custom_data.get(INTERRUPT_KEY)
        if not thread_id or not interrupt_id:
            log.warning("execution %s has no LangGraph thread", callback.execution_id)
            return
        config = {"configurable": {"thread_id": thread_id}}
        async with self._locks[zlib.crc32(thread_id.encode()) % LOCK_STRIPES]:
            pending = _pending_interrupts(await self.graph.aget_state(config, subgraphs=True))
            asked = pending.get(interrupt_id)
            if not isinstance(asked, Mapping) or not _parked_for(asked, callback.execution_id):
                log.info(
                    "thread %s is not waiting at interrupt %s (already resumed)",
                    thread_id,
                    interrupt_id,
                )
                return
            got = answer(
                asked["waitgate"]["kind"],
                asked.get("default"),
                execution_id=callback.execution_id,
                resumed_by=callback.resumed_by,
                payload=callback.payload,
                canceled=canceled,
            )
            try:
                await self.graph.ainvoke(Command(resume={interrupt_id: got.to_json()}), config)
            except Exception as exc:
                if self.client is None:
                    raise  # nothing else can tell waitgate: its retry finds the thread answered
                log.error(
                    "thread %s failed after taking the answer of execution %s: %r",
                    thread_id,
                    callback.execution_id,
                    exc,
                )
                failure = {"message": str(exc), "type": type(exc).__name__}
                await self._finish(callback.execution_id, thread_id, failure)
                return
        if not canceled:
            await self._finish(callback.execution_id, thread_id)

    async def _finish(
        self, execution_id: int, thread_id: str, failure: dict[str, str] | None = None
    ) -> None:
        """Finish the execution: ``success``, or ``error`` with the graph's ``failure``."""
        if self.client is None:
            return
        status = "success" if failure is None else "error"
        try:
            await self.client.finish(
                execution_id, status, data={"threadId": thread_id}, error=failure
            )
        except WaitgateError as exc:
            if exc.status != 409:  # 409: ended already (a duplicate, or stopped)
                raise


def _parked_for(asked: Mapping[str, Any], execution_id: int) -> bool:
    info = asked.get("waitgate")
    return isinstance(info, Mapping) and info.get("executionId") == execution_id


def load_graph(spec: str) -> Any:
    """The object ``module:attribute`` names: a compiled graph, a builder (``StateGraph``),
    or a function of no arguments returning either."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{GRAPH_ENV} must read module:attribute, not {spec!r}")
    found: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        found = getattr(found, part)
    if callable(found) and not hasattr(found, "compile") and not hasattr(found, "ainvoke"):
        found = found()
    return found


@asynccontextmanager
async def graph_with_checkpointer(spec: Any, path: str) -> AsyncIterator[Graph]:
    """The graph ``spec`` (see ``load_graph``) compiled or re-bound to a SQLite checkpointer
    at ``path``, open for the duration."""
    loaded = load_graph(spec) if isinstance(spec, str) else spec
    async with AsyncSqliteSaver.from_conn_string(path) as saver:
        if hasattr(loaded, "compile"):
            graph: Any = loaded.compile(checkpointer=saver)
        else:
            graph = loaded.copy(update={"checkpointer": saver})
        yield graph


def relay_adapter(
    environ: Mapping[str, str] = os.environ,
) -> AbstractAsyncContextManager[LangGraphAdapter]:
    """The adapter for ``waitgate relay --engine langgraph``: the graph of
    ``WAITGATE_LANGGRAPH_GRAPH`` on the checkpoints of ``WAITGATE_LANGGRAPH_CHECKPOINTS``; with
    ``WAITGATE_URL`` and ``WAITGATE_API_KEY`` it finishes each execution it continued."""

    @asynccontextmanager
    async def build() -> AsyncIterator[LangGraphAdapter]:
        spec = environ.get(GRAPH_ENV)
        path = environ.get(CHECKPOINTS_ENV)
        if not spec or not path:
            raise RuntimeError(f"set {GRAPH_ENV}=module:attribute and {CHECKPOINTS_ENV}=<file>")
        url, key = environ.get("WAITGATE_URL"), environ.get("WAITGATE_API_KEY")
        async with graph_with_checkpointer(spec, path) as graph:
            if url and key:
                async with WaitgateClient(url, key) as client:
                    yield LangGraphAdapter(graph, client)
            else:
                yield LangGraphAdapter(graph)

    return build()
