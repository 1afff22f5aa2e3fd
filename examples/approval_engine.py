"""A tiny workflow engine that waits for an approval through waitgate.

It starts an "approval" execution whose callbacks come back to this script, parks it on an
approval page and prints the page's link: a GET of that link only shows the question, and the
answer is a POST of the page's form (Approve or Reject), so link scanners and previews cannot
approve anything. When somebody answers (or after two minutes, when the deadline passes)
waitgate calls back; the script checks the callback's signature, prints what arrived and
finishes the execution.

Run the gateway with callbacks allowed to this machine, then this script:

    WAITGATE_CALLBACK_ALLOWED_ORIGINS=http://127.0.0.1:8765 make run
    WAITGATE_API_KEY=wg_... .venv/bin/python examples/approval_engine.py

It reads the callback secret from ``WAITGATE_CALLBACK_SECRET`` or, as the gateway generates it
at first start, from ``./data/callback.secret``. Whatever stops it early (the gateway
unreachable, or refusing the callback URL) is said in one line, with exit status 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.client import CallbackVerificationError, WaitgateClient, WaitgateError, verify_callback

GATEWAY = os.environ.get("WAITGATE_URL", "http://127.0.0.1:5678")
ENGINE_PORT = int(os.environ.get("ENGINE_PORT", "8765"))
CALLBACK_URL = f"http://127.0.0.1:{ENGINE_PORT}/callback"


class Stop(Exception):
    """Why the engine cannot go on, in one line."""


def callback_secret() -> str:
    """The secret waitgate signs callbacks with."""
    secret = os.environ.get("WAITGATE_CALLBACK_SECRET")
    if secret:
        return secret
    try:
        return Path("data/callback.secret").read_text().strip()
    except OSError:
        raise Stop(
            "no callback secret: set WAITGATE_CALLBACK_SECRET, or run this script where the "
            "gateway keeps data/callback.secret"
        ) from None


@contextlib.contextmanager
def gateway_errors() -> Iterator[None]:
    """Turn the gateway's refusals and network failures into a ``Stop``."""
    try:
        yield
    except WaitgateError as exc:
        hint = ""
        if exc.status == 400 and "callback" in exc.message.lower():
            hint = (
                f"; start the gateway with WAITGATE_CALLBACK_ALLOWED_ORIGINS="
                f"http://127.0.0.1:{ENGINE_PORT}"
            )
        raise Stop(f"the gateway refused ({exc.status}): {exc.message}{hint}") from None
    except httpx.TransportError as exc:
        reason = str(exc) or type(exc).__name__
        raise Stop(f"cannot reach the gateway at {GATEWAY}: {reason}") from None


def listening_socket() -> socket.socket:
    """The socket callbacks arrive on, bound now so that a port in use is said at once."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", ENGINE_PORT))
    except OSError as exc:
        sock.close()
        raise Stop(
            f"cannot listen for callbacks on 127.0.0.1:{ENGINE_PORT}: {exc.strerror} "
            "(set ENGINE_PORT)"
        ) from None
    return sock


def approved_by(data: dict[str, Any]) -> bool:
    """Whether the resume says yes: an answer on the page resumes with ``{"approved": true,
    "comment": …}``; the deadline resumes with no answer (``resumedBy: "timeout"``)."""
    payload = data.get("payload")
    return isinstance(payload, dict) and payload.get("approved") is True


async def next_resume(
    resumed: asyncio.Queue[dict[str, Any]], serving: asyncio.Task[None]
) -> dict[str, Any]:
    """The next resume callback; ``Stop`` if the callback server ends first (Ctrl-C)."""
    getting = asyncio.ensure_future(resumed.get())
    await asyncio.wait({getting, serving}, return_when=asyncio.FIRST_COMPLETED)
    if getting.done():
        return getting.result()
    getting.cancel()
    raise Stop("stopped before an answer arrived")


async def approve_once(
    api_key: str, resumed: asyncio.Queue[dict[str, Any]], serving: asyncio.Task[None]
) -> None:
    """Start one approval and finish it when waitgate says it was resumed."""
    with gateway_errors():
        async with WaitgateClient(GATEWAY, api_key) as gate:
            deadline = datetime.now(UTC) + timedelta(minutes=2)
            execution = parked = await gate.create(  # created and parked in one request
                "approval-demo",
                custom_data={"request": "laptop"},
                callback_url=CALLBACK_URL,
                wait={
                    "waitTill": deadline,
                    "approval": {
                        "title": "Approve a laptop?",
                        "description": "A new laptop for the demo team.",
                    },
                },
            )
            print(f"execution {execution.id} waits for approval until {deadline:%H:%M:%S} UTC")
            print(f"approve or reject on:\n  {parked.approval_url}", flush=True)
            data = await next_resume(resumed, serving)
            approved = approved_by(data)
            print(f"resumed by {data['resumedBy']}; approved: {approved}")
            done = await gate.finish(execution.id, data={"approved": approved})
            print(f"execution {done.id} is now {done.status}")


async def main() -> None:
    """Serve the callback endpoint while one approval runs."""
    api_key = os.environ.get("WAITGATE_API_KEY")
    if not api_key:
        raise Stop("set WAITGATE_API_KEY to a key with the execution:write scope")
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
    serving = asyncio.create_task(server.serve(sockets=[listening_socket()]))
    try:
        await approve_once(api_key, resumed, serving)
    finally:
        server.should_exit = True
        await serving


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Stop as stop:
        sys.exit(f"approval_engine: {stop}")
    except KeyboardInterrupt:
        sys.exit(130)
