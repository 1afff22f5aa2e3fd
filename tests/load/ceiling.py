"""The honest ceiling: the least a resume gateway must do per request, written the ordinary way.

A Starlette route that verifies an itsdangerous signature and makes one conditional ``UPDATE``
plus a ``COMMIT`` per request through aiosqlite (one connection, WAL, ``synchronous = FULL``),
no logging, served by the same uvicorn (httptools, one worker) as ``waitgate serve``. Nothing
is answered before its ``COMMIT`` returns. Every request shares the one connection, so commits
of concurrent requests coalesce as they do in any app written this way (a ``COMMIT`` makes every
``UPDATE`` run before it durable).

Run as ``python -m tests.load.ceiling DB PORT``.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import sys
from collections.abc import AsyncIterator

import aiosqlite
import uvicorn
from itsdangerous import BadSignature, Signer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

SIGNER = Signer(
    "ceiling-secret", salt="ceiling", key_derivation="hmac", digest_method=hashlib.sha256
)


def prepare(path: str, rows: int) -> None:
    """A table of ``rows`` waiting rows (ids 1 to ``rows``)."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS waits (id INTEGER PRIMARY KEY, status TEXT, body BLOB)"
    )
    conn.executemany("INSERT INTO waits (status) VALUES ('waiting')", [()] * rows)
    conn.commit()
    conn.close()


def token(wait_id: int) -> str:
    """The ``signature`` query value the ceiling expects for one row: the signed id."""
    return SIGNER.sign(str(wait_id).encode()).decode()


def app(path: str) -> Starlette:
    """The ceiling app on the database at ``path``."""
    db: list[aiosqlite.Connection] = []

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        conn = await aiosqlite.connect(path)
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = FULL")
        db.append(conn)
        try:
            yield
        finally:
            await conn.close()

    async def resume(request: Request) -> JSONResponse:
        try:
            signed = SIGNER.unsign(request.query_params.get("signature", "").encode())
        except BadSignature:
            return JSONResponse({"message": "Invalid token"}, status_code=401)
        if signed.decode() != request.path_params["id"]:
            return JSONResponse({"message": "Invalid token"}, status_code=401)
        body = await request.body()
        conn = db[0]
        cursor = await conn.execute(
            "UPDATE waits SET status = 'resumed', body = ? WHERE id = ? AND status = 'waiting'",
            (body, int(signed)),
        )
        await conn.commit()
        if cursor.rowcount != 1:
            return JSONResponse({"message": "conflict"}, status_code=409)
        return JSONResponse({"message": "Workflow was started"})

    return Starlette(
        routes=[Route("/webhook-waiting/{id}", resume, methods=["POST"])], lifespan=lifespan
    )


if __name__ == "__main__":
    uvicorn.run(
        app(sys.argv[1]),
        host="127.0.0.1",
        port=int(sys.argv[2]),
        log_level="warning",
        access_log=False,
        http="httptools",
    )
