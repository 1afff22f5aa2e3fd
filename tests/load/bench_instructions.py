"""Instructions per resume and per park, counted by callgrind, against the ceiling's resume.

Rates and CPU time move with whatever else the machine runs (runs of one build differed by 15%
in session 9); instruction counts much less: the same build's resume counted 943,000 to 976,000 in
four runs (the SQLite writer's groups form differently each time), so compare the means of a
few runs of each build.

Each count is an in-process run that sends requests straight to the ASGI app, 32 at a time (no
HTTP server: uvicorn's share, the same for the ceiling and the gateway, is left out, so the
ratio here is lower than the served one), under ``valgrind --tool=callgrind``, minus a run that
does everything but what is counted, which cancels start-up: a park is park-run(N) minus
park-run(0), a resume resume-run(N) minus park-run(N), and the ceiling's resume likewise. The
gateway runs as shipped: log level ``info`` (JSON lines), metrics and the audit trail on.

``python -m tests.load instructions`` (needs valgrind: ``apt-get install valgrind``); one run of
the driver alone: ``python -m tests.load.bench_instructions gateway|ceiling park|resume N``.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import msgspec
from starlette.types import ASGIApp, Message

from tests.load.bench_throughput import BODY, CREATE_PARKED

COUNT = 1_000
CONNECTIONS = 32
Target = Literal["gateway", "ceiling"]
Phase = Literal["park", "resume"]
JSON = (b"content-type", b"application/json")
HOST = "127.0.0.1:9"


async def call(
    app: ASGIApp, path: str, body: bytes, *headers: tuple[bytes, bytes]
) -> tuple[int, bytes]:
    """One POST to ``app``, as an HTTP server would hand it over: its status and body."""
    target, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": target,
        "raw_path": target.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", HOST.encode()), *headers, (b"content-length", b"%d" % len(body))],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 9),
        "state": {},
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def in_turns(calls: list[Callable[[], Awaitable[tuple[int, bytes]]]]) -> list[bytes]:
    """Run the calls ``CONNECTIONS`` at a time; their bodies (every one must be a 2xx)."""
    bodies = []
    for start in range(0, len(calls), CONNECTIONS):
        for status, body in await asyncio.gather(
            *(c() for c in calls[start : start + CONNECTIONS])
        ):
            if not 200 <= status < 300:
                raise RuntimeError(f"{status}: {body[:200]!r}")
            bodies.append(body)
    return bodies


def _resume_by(app: ASGIApp, path: str) -> Callable[[], Awaitable[tuple[int, bytes]]]:
    return lambda: call(app, path, BODY, JSON)


async def drive_gateway(phase: Phase, count: int, folder: Path) -> None:
    """Park ``count`` executions (one request each), then with ``resume`` resume each by its URL."""
    os.environ.update(
        {
            "WAITGATE_DATABASE_URL": f"sqlite:///{folder / 'waitgate.db'}",
            "WAITGATE_SECRET_KEYS": "instructions-" + "k" * 32,
            "WAITGATE_PUBLIC_URL": f"http://{HOST}",
        }
    )
    from gateway.app import create_app
    from gateway.auth import generate_key, hash_key
    from gateway.config import Settings
    from gateway.logs import configure_logging

    configure_logging("info")
    app = create_app(Settings.from_env())
    async with app.router.lifespan_context(app):
        svc = app.state.services
        key = generate_key()
        await svc.store.create_api_key("bench", hash_key(key), key[:10], ("admin",), None, 0)
        auth = (b"x-n8n-api-key", key.encode())
        parked = await in_turns(
            [lambda: call(app, "/api/v1/executions", CREATE_PARKED, JSON, auth)] * count
        )
        if phase == "resume":
            urls = [msgspec.json.decode(b)["resumeUrl"].split(HOST, 1)[1] for b in parked]
            await in_turns([_resume_by(app, url) for url in urls])


async def drive_ceiling(phase: Phase, count: int, folder: Path) -> None:
    """The ceiling app with ``count`` waiting rows; with ``resume`` each resumed."""
    from tests.load import ceiling

    db = str(folder / "ceiling.db")
    ceiling.prepare(db, count)
    app = ceiling.app(db)
    async with app.router.lifespan_context(app):
        if phase == "resume":
            paths = [
                f"/webhook-waiting/{i}?signature={ceiling.token(i)}" for i in range(1, count + 1)
            ]
            await in_turns([_resume_by(app, path) for path in paths])


def instructions(target: Target, phase: Phase, count: int) -> int:
    """Instructions callgrind counted in one run of the driver (the whole process)."""
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "callgrind.log"
        command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
        command += [f"--log-file={log}", sys.executable, "-m", __name__, target, phase, str(count)]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        subprocess.run(
            command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        found = re.search(r"Collected : (\d+)", log.read_text())
        if found is None:
            raise RuntimeError(f"callgrind counted nothing: {log.read_text()[-2000:]}")
        return int(found.group(1))


def main(count: int = COUNT) -> None:
    """Print instructions per resume and per park, and the resume's against the ceiling's."""
    if shutil.which("valgrind") is None:
        raise SystemExit("the instruction counts need valgrind: apt-get install valgrind")
    runs: list[tuple[Target, Phase, int]] = [
        ("gateway", "park", 0),
        ("gateway", "park", count),
        ("gateway", "resume", count),
        ("ceiling", "park", count),
        ("ceiling", "resume", count),
    ]
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        counted = dict(zip(runs, pool.map(lambda run: instructions(*run), runs), strict=True))
    ceiling = (counted["ceiling", "resume", count] - counted["ceiling", "park", count]) / count
    resume = (counted["gateway", "resume", count] - counted["gateway", "park", count]) / count
    park = (counted["gateway", "park", count] - counted["gateway", "park", 0]) / count
    print(f"instructions (callgrind, in process without the HTTP server, {count:,} of each):")
    print(f"ceiling  resume                   : {ceiling:10,.0f} per request")
    print(
        f"resume   as shipped (info)        : {resume:10,.0f} per request "
        f"= {resume / ceiling:.2f} x the ceiling's"
    )
    print(
        f"park     as shipped (info)        : {park:10,.0f} per execution "
        f"= {park / ceiling:.2f} x (one request: create with wait)"
    )


if __name__ == "__main__":
    target, phase, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with tempfile.TemporaryDirectory() as work:
        drive = drive_gateway if target == "gateway" else drive_ceiling
        asyncio.run(drive(phase, count, Path(work)))  # type: ignore[arg-type]
