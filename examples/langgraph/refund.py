"""A refund graph whose approval step waits in waitgate (no language model needed).

``check`` decides whether a refund needs a person; ``approve`` asks through
``waitgate_interrupt`` (an approval page, rejected if nobody answers within 10 minutes);
``pay`` or ``refuse`` ends the thread. The relay (``waitgate relay --engine langgraph``) loads
``builder`` from here and continues the thread when the page is answered.

    python -m examples.langgraph.refund start A-1001 120   # prints the approval link
    python -m examples.langgraph.refund show A-1001        # where the thread is

See README.md beside this file for the whole walkthrough.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta
from typing import Any, Literal, TypedDict

from langgraph.graph import END, START, StateGraph

from gateway.integrations.asks import Approval
from gateway.integrations.langgraph import (
    CHECKPOINTS_ENV,
    graph_with_checkpointer,
    waitgate_interrupt,
)

CHECKPOINTS = os.environ.get(CHECKPOINTS_ENV, "data/langgraph.db")


class Refund(TypedDict, total=False):
    """The thread's state."""

    order: str
    amount: int
    approved: bool
    decided_by: str
    outcome: str


def check(state: Refund) -> Refund:
    """Small refunds need nobody."""
    return {"approved": state["amount"] <= 50, "decided_by": "rule"}


def needs_person(state: Refund) -> Literal["approve", "pay"]:
    """Ask a person unless the rule approved."""
    return "pay" if state["approved"] else "approve"


async def approve(state: Refund) -> Refund:
    """Ask on an approval page; the default at the deadline is a rejection."""
    answer = await waitgate_interrupt(
        Approval(
            f"Refund {state['amount']} EUR for order {state['order']}?",
            description="The customer says the parcel arrived damaged.",
            default=False,
            deadline=timedelta(minutes=10),
        ),
        workflow_id="refunds",
    )
    return {"approved": answer.approved, "decided_by": answer.resumed_by}


def decided(state: Refund) -> Literal["pay", "refuse"]:
    """Pay when approved."""
    return "pay" if state["approved"] else "refuse"


def pay(state: Refund) -> Refund:
    """Pay the refund (here: say so)."""
    return {"outcome": f"paid {state['amount']} EUR"}


def refuse(state: Refund) -> Refund:
    """Refuse the refund."""
    return {"outcome": "refused"}


builder: StateGraph[Refund] = StateGraph(Refund)
builder.add_node("check", check)
builder.add_node("approve", approve)
builder.add_node("pay", pay)
builder.add_node("refuse", refuse)
builder.add_edge(START, "check")
builder.add_conditional_edges("check", needs_person)
builder.add_conditional_edges("approve", decided)
builder.add_edge("pay", END)
builder.add_edge("refuse", END)


async def main(command: str, order: str, amount: int) -> None:
    """Start a thread for ``order`` (one thread per order), or show where it is."""
    config: Any = {"configurable": {"thread_id": order}}
    async with graph_with_checkpointer(builder, CHECKPOINTS) as graph:
        snapshot = await graph.aget_state(config)
        if command == "start" and snapshot.next:  # a new input would start the thread over
            for pending in snapshot.interrupts:
                print(f"already waiting for an answer: {pending.value['waitgate']['url']}")
            return
        if command == "start":
            out = await graph.ainvoke({"order": order, "amount": amount}, config)
            for pending in out.get("__interrupt__", ()):
                print(f"waiting for an answer: {pending.value['waitgate']['url']}")
            if "outcome" in out:
                print(f"done: {out['outcome']}")
            return
        values = dict(snapshot.values)
        if snapshot.next:
            print(f"order {order} waits at {snapshot.next[0]}: {values}")
        else:
            print(f"order {order}: {values.get('outcome')} (decided by {values.get('decided_by')})")


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in {"start", "show"}:
        sys.exit("usage: python -m examples.langgraph.refund start ORDER AMOUNT | show ORDER")
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0))
