"""The flows the Prefect tests run: each parks one waitgate wait and returns what it got."""

from __future__ import annotations

import queue
from typing import Any

from prefect import flow
from pydantic import BaseModel, Field

from gateway.integrations.prefect import (
    Waitgate,
    WaitLinks,
    wait_for_approval,
    wait_for_input,
    wait_for_input_sync,
)

POLL = 0.2
"""Seconds between a paused flow's looks at its state (Prefect's default is 10)."""
links: queue.Queue[WaitLinks] = queue.Queue()
"""Every link the flows hand out, in order."""


class Shipping(BaseModel):
    """Where the parcel goes."""

    address: str = Field("the warehouse", max_length=100)
    express: bool = False
    parcels: int = Field(1, ge=1, le=10)


def gate(url: str, key: str, relay: str) -> Waitgate:
    return Waitgate(url, key, relay)


@flow(persist_result=False)
async def ask_shipping(
    url: str, key: str, relay: str, deadline: float | None = 3600, mode: str = "pause"
) -> dict[str, Any]:
    answer = await wait_for_input(
        Shipping,
        title="Where to?",
        timeout=deadline,
        gate=gate(url, key, relay),
        on_link=links.put,
        poll_interval=POLL,
        mode="suspend" if mode == "suspend" else "pause",
    )
    shipping: dict[str, Any] = answer.model_dump()
    return shipping


@flow(persist_result=False)
async def ask_approval(
    url: str, key: str, relay: str, default: bool = False, approvers: list[str] | None = None
) -> dict[str, Any]:
    decision = await wait_for_approval(
        "Ship order A-1?",
        description="Two parcels to Oslo",
        approvers=approvers or (),
        required=len(approvers or ()) or 1,
        timeout=3600,
        default=default,
        gate=gate(url, key, relay),
        on_link=links.put,
        poll_interval=POLL,
    )
    decided: dict[str, Any] = decision.model_dump()
    return decided


@flow(persist_result=False)
def ask_shipping_sync(url: str, key: str, relay: str) -> dict[str, Any]:
    answer = wait_for_input_sync(
        Shipping,
        title="Where to?",
        gate=gate(url, key, relay),
        on_link=links.put,
        poll_interval=POLL,
    )
    shipping: dict[str, Any] = answer.model_dump()
    return shipping
