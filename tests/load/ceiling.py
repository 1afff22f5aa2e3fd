"""The ceiling: the least a resume gateway must do per request, on the same stack.

A minimal Starlette app that verifies an itsdangerous signature and makes one conditional
``UPDATE`` on SQLite (WAL, ``synchronous = FULL``, a commit per request), served by the same
uvicorn. Run as ``python -m tests.load.ceiling DB PORT``.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import sys

import uvicorn
from itsdangerous import Signer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

SIGNER = Signer(
    "ceiling-secret", salt="ceiling", key_derivation="hmac", digest_method=hashlib.sha256
)


def prepare(path: str, rows: int) -> None:
    """A table of ``rows`` waiting rows."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS waits (id INTEGER PRIMARY KEY, status TEXT, body TEXT)"
    )
    conn.executemany("INSERT INTO waits (status) VALUES ('waiting')", [()] * rows)
    conn.commit()
    conn.close()


def token(wait_id: int) -> str:
    """The signature the ceiling expects for one row."""
    return SIGNER.get_signature(str(wait_id).encode()).decode()


def app(path: str) -> Starlette:
    """The ceiling app on the database at ``path``."""
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    lock = asyncio.Lock()

    def update(wait_id: int, body: bytes) -> int:
        conn.execute("BEGIN IMMEDIATE")
        changed = conn.execute(
            "UPDATE waits SET status = 'resumed', body = ? WHERE id = ? AND status = 'waiting'",
            (body.decode(), wait_id),
        ).rowcount
        conn.execute("COMMIT")
        return changed

    async def resume(request: Request) -> JSONResponse:
        wait_id = int(request.path_params["id"])
        if not SIGNER.verify_signature(
            str(wait_id).encode(), request.query_params["signature"].encode()
        ):
            return JSONResponse({"message": "Invalid token"}, status_code=401)
        body = await request.body()
        async with lock:
            changed = await asyncio.to_thread(update, wait_id, body)
        if not changed:
            return JSONResponse({"message": "conflict"}, status_code=409)
        return JSONResponse({"message": "Workflow was started"})

    return Starlette(routes=[Route("/webhook-waiting/{id}", resume, methods=["POST"])])


if __name__ == "__main__":
    uvicorn.run(
        app(sys.argv[1]),
        host="127.0.0.1",
        port=int(sys.argv[2]),
        log_level="warning",
        access_log=False,
    )
