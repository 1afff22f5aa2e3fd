"""A tiny workflow engine that waits for an approval through waitgate.

It starts an "approval" execution whose callbacks come back to this script, prints the
execution's resume URL, and waits: when somebody POSTs to that URL (or after two minutes, when
the deadline passes) waitgate calls back, the script checks the callback's signature, prints
what arrived and finishes the execution.

Run the gateway with callbacks allowed to this machine, then this script:

    WAITGATE_CALLBACK_ALLOWED_ORIGINS=http://127.0.0.1:8765 make run
    WAITGATE_API_KEY=wg_... .venv/bin/python examples/approval_engine.py

It reads the callback secret from ``WAITGATE_CALLBACK_SECRET`` or, as the gateway generates it
at first start, from ``./data/callback.secret``.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.client import CallbackVerificationError, WaitgateClient, verify_callback

GATEWAY = os.environ.get("WAITGATE_URL", "http://127.0.0.1:5678")
ENGINE_PORT = int(os.environ.get("ENGINE_PORT", "8765"))


def callback_secret() -> str:
    """The secret waitgate signs callbacks with."""
    return (
        os.environ.get("WAITGATE_CALLBACK_SECRET")
        or Path("data/callback.secret").read_text().strip()
    )


async def main() -> None:
    """Start one approval and finish it when waitgate says it was resumed."""
    secret = callback_secret()
    resumed: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def callback(request: Request) -> Response:
        body = await request.body()
        try:
            event = verify_callback(request.headers, body, secret)
        except CallbackVerificationError as exc:
            return JSONResponse({"message": str(exc)}, status_code=401)
        if event["type"] == "execution.resumed":
            await resumed.put(event["data"])
        return JSONResponse({"received": True})

    app = Starlette(routes=[Route("/callback", callback, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=ENGINE_PORT, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())

    async with WaitgateClient(GATEWAY, os.environ["WAITGATE_API_KEY"]) as gate:
        execution = await gate.create(
            "approval-demo",
            custom_data={"request": "laptop"},
            callback_url=f"http://127.0.0.1:{ENGINE_PORT}/callback",
        )
        deadline = datetime.now(UTC) + timedelta(minutes=2)
        await gate.wait(execution.id, wait_till=deadline, webhook={"httpMethod": ["GET", "POST"]})
        print(f"execution {execution.id} waits for approval until {deadline:%H:%M:%S} UTC")
        print(
            f"approve with:\n  curl -X POST '{execution.resume_url}' -d '{{\"approved\": true}}' "
            "-H 'content-type: application/json'"
        )
        data = await resumed.get()
        body = (data.get("payload") or {}).get("body")
        approved = isinstance(body, dict) and body.get("approved") is True
        print(f"resumed by {data['resumedBy']}; approved: {approved}")
        done = await gate.finish(execution.id, data={"approved": approved})
        print(f"execution {done.id} is now {done.status}")

    server.should_exit = True
    await serving


if __name__ == "__main__":
    asyncio.run(main())
