"""A Prefect flow that asks a person twice through waitgate: approve the order, then fill in
the shipping form. Each wait pauses the flow run; an answer (or the deadline, which takes the
default) resumes it through the relay.

See README.md beside this file for the four commands that run it.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from prefect import flow
from pydantic import BaseModel, Field

from gateway.integrations.prefect import WaitLinks, wait_for_approval, wait_for_input


class Shipping(BaseModel):
    """Where and how the order goes (each field has a default: the deadline takes them)."""

    address: str = Field("Pick-up at the warehouse", max_length=200)
    express: bool = False
    parcels: int = Field(1, ge=1, le=20)


def show(links: WaitLinks) -> None:
    """Where a real flow would post the link to a chat or a ticket."""
    print(f"\n  Answer here: {links.link}\n")


@flow(log_prints=True)
async def ship_order(order: str = "A-1001", minutes: float = 10) -> str:
    """Ship ``order`` once approved, as the form says; nothing when rejected or unanswered."""
    decision = await wait_for_approval(
        f"Ship order {order}?",
        description="Two parcels, paid.",
        timeout=timedelta(minutes=minutes),
        default=False,
        on_link=show,
        poll_interval=2,
    )
    if not decision.approved:
        return f"{order}: not shipped" + (" (no answer in time)" if decision.timed_out else "")
    shipping = await wait_for_input(
        Shipping,
        title=f"Shipping of {order}",
        timeout=timedelta(minutes=minutes),
        on_link=show,
        poll_interval=2,
    )
    speed = " by express" if shipping.express else ""
    return f"{order}: {shipping.parcels} parcel(s) to {shipping.address}{speed}"


if __name__ == "__main__":
    # python ship_order.py [minutes]: how long each question waits before taking its default
    print(asyncio.run(ship_order(minutes=float(sys.argv[1]) if len(sys.argv) > 1 else 10)))
