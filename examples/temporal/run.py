"""Run a worker with waitgate's activities, start one ``ShipOrder`` and print its outcome.

    WAITGATE_API_KEY=wg_... python -m examples.temporal.run [--order A-1001] [--timeout 300]

It prints the approval page's link (``Approve: <url>``) as soon as the wait is parked, then,
when somebody answers or the deadline passes, the workflow's result as one JSON line.
Settings come from the environment: ``TEMPORAL_ADDRESS`` (default ``localhost:7233``),
``TEMPORAL_NAMESPACE``, ``WAITGATE_URL`` (default ``http://127.0.0.1:5678``),
``WAITGATE_API_KEY`` and ``WAITGATE_RELAY_URL`` (default ``http://127.0.0.1:5679/``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.service import RPCError
from temporalio.worker import Worker

from examples.temporal.workflows import Order, ShipOrder
from gateway.integrations.temporal import LINKS_QUERY, WaitgateActivities, connect

TASK_QUEUE = "waitgate-example"


async def approval_url(handle: WorkflowHandle[Any, Any]) -> str:
    """The approval page's link, once the workflow has parked its wait."""
    while True:
        try:
            links: dict[str, dict[str, Any]] = await handle.query(LINKS_QUERY)
        except RPCError:
            links = {}  # not parked yet
        if "approval" in links:
            url: str = links["approval"]["approvalUrl"]
            return url
        await asyncio.sleep(0.2)


async def main(order: str, wait_seconds: float) -> dict[str, Any]:
    """Serve the workflow and its activities until the one started here ends."""
    client = await connect()
    activities = WaitgateActivities.from_env()
    try:
        async with Worker(
            client, task_queue=TASK_QUEUE, workflows=[ShipOrder], activities=activities.all()
        ):
            handle = await client.start_workflow(
                ShipOrder.run,
                Order(order, wait_seconds),
                id=f"ship-{order}-{uuid.uuid4().hex[:8]}",
                task_queue=TASK_QUEUE,
            )
            print(f"Approve: {await approval_url(handle)}", flush=True)
            result: dict[str, Any] = await handle.result()
            return result
    finally:
        await activities.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--order", default="A-1001")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait")
    arguments = parser.parse_args()
    try:
        outcome = asyncio.run(main(arguments.order, arguments.timeout))
    except (RuntimeError, RPCError, OSError) as error:
        print(f"example stopped: {error}", file=sys.stderr, flush=True)
        os._exit(1)
    print(json.dumps(outcome), flush=True)
    # The SDK's Rust threads may still call into Python while the interpreter finalizes, which
    # aborts a short-lived process ("PyGILState_Release", temporalio/sdk-python#300): skip the
    # teardown once everything is printed.
    os._exit(0)
