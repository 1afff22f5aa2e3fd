"""A small LangGraph graph (no language model) that asks through waitgate.

``ask`` builds the question the state names (an approval, a form or a webhook) and waits for
its answer with ``waitgate_interrupt``; ``after`` records what came back. The relay loads the
builder as ``tests.engines.langgraph.graphs:builder``.
"""

from __future__ import annotations

import operator
from datetime import timedelta
from typing import Annotated, Any, Literal, TypedDict

from langgraph.graph import END, START, StateGraph

from gateway.integrations.asks import Approval, Ask, Form, Webhook
from gateway.integrations.langgraph import waitgate_interrupt, waitgate_interrupt_sync

REFUND_FORM = {
    "type": "object",
    "title": "Refund details",
    "properties": {
        "amount": {"type": "integer", "minimum": 0, "default": 10},
        "reason": {"type": "string", "default": "late delivery"},
    },
    "required": ["amount"],
}


class Refund(TypedDict, total=False):
    """The graph's state."""

    order: str
    kind: Literal["approval", "form", "webhook"]
    default: Any
    answer: Any
    resumed_by: str
    log: Annotated[list[str], operator.add]


def question(state: Refund) -> Ask:
    """The question the state asks, with a one-hour deadline."""
    hour = timedelta(hours=1)
    kind = state.get("kind", "approval")
    if kind == "approval":
        return Approval(
            f"Refund order {state['order']}?", default=bool(state.get("default")), deadline=hour
        )
    if kind == "form":
        return Form(REFUND_FORM, deadline=hour)
    return Webhook(default=state.get("default"), deadline=hour)


async def ask(state: Refund) -> Refund:
    """Wait for the answer."""
    got = await waitgate_interrupt(question(state), workflow_id="refunds")
    return {"answer": got.value, "resumed_by": got.resumed_by, "log": ["asked"]}


def ask_sync(state: Refund) -> Refund:
    """The same, in a sync node."""
    got = waitgate_interrupt_sync(question(state), workflow_id="refunds")
    return {"answer": got.value, "resumed_by": got.resumed_by, "log": ["asked"]}


def after(state: Refund) -> Refund:
    """What runs once the answer is in (counted in ``log``)."""
    return {"log": [f"after:{state['resumed_by']}"]}


builder: StateGraph[Refund] = StateGraph(Refund)
builder.add_node("ask", ask)
builder.add_node("after", after)
builder.add_edge(START, "ask")
builder.add_edge("ask", "after")
builder.add_edge("after", END)


inner: StateGraph[Refund] = StateGraph(Refund)
inner.add_node("ask", ask)
inner.add_edge(START, "ask")
inner.add_edge("ask", END)

nested: StateGraph[Refund] = StateGraph(Refund)
"""The same question asked inside a subgraph (``review``), then ``after`` in the parent."""
nested.add_node("review", inner.compile())
nested.add_node("after", after)
nested.add_edge(START, "review")
nested.add_edge("review", "after")
nested.add_edge("after", END)

synchronous: StateGraph[Refund] = StateGraph(Refund)
"""The question asked by a sync node."""
synchronous.add_node("ask", ask_sync)
synchronous.add_node("after", after)
synchronous.add_edge(START, "ask")
synchronous.add_edge("ask", "after")
synchronous.add_edge("after", END)

OUTAGE = "the refund service is down"


def after_fails(state: Refund) -> Refund:
    """What runs once the answer is in, failing as a node whose own service is down."""
    raise RuntimeError(OUTAGE)


breaking: StateGraph[Refund] = StateGraph(Refund)
"""The question, then a node that fails: the thread stops in error after taking the answer."""
breaking.add_node("ask", ask)
breaking.add_node("after", after_fails)
breaking.add_edge(START, "ask")
breaking.add_edge("ask", "after")
breaking.add_edge("after", END)
