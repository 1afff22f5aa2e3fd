"""Resume and park throughput of a real ``waitgate serve`` against the ceiling, same machine."""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import msgspec

from tests.load import ceiling
from tests.load.loadgen import Request, Result, run
from tests.process import GatewayProcess
from tests.receiver import free_port

BODY = msgspec.json.encode({"approved": True, "by": "someone@example.com", "note": "x" * 140})
JSON = {"content-type": "application/json"}


def resume_paths(base_url: str, api_key: str) -> dict[int, str]:
    """Path and query of every waiting execution's resume URL, by id, as the API gives them
    (a URL carries its execution's random nonce, so it cannot be made from the key alone)."""
    paths: dict[int, str] = {}
    params = {"status": "waiting", "limit": "250"}
    with httpx.Client(base_url=base_url, headers={"x-n8n-api-key": api_key}) as http:
        while True:
            page = http.get("/api/v1/executions", params=params).json()
            for execution in page["data"]:
                url = urlsplit(execution["resumeUrl"])
                paths[execution["id"]] = f"{url.path}?{url.query}"
            if not page["nextCursor"]:
                return paths
            params = {"cursor": page["nextCursor"]}


def _wait_for_port(port: int, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def ceiling_resume(count: int, connections: int) -> Result:
    """Resume ``count`` rows through the ceiling app."""
    with tempfile.TemporaryDirectory() as folder:
        db = str(Path(folder) / "ceiling.db")
        ceiling.prepare(db, count)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "tests.load.ceiling", db, str(port)])
        try:
            _wait_for_port(port)
            requests: list[Request] = [
                ("POST", f"/webhook-waiting/{i}?signature={ceiling.token(i)}", BODY, JSON)
                for i in range(1, count + 1)
            ]
            return asyncio.run(run(f"http://127.0.0.1:{port}", requests, connections))
        finally:
            server.terminate()
            server.wait(10)


def gateway_park_and_resume(
    count: int, connections: int, env: dict[str, str] | None = None
) -> tuple[Result, Result]:
    """Create and park ``count`` executions, then resume each by its URL."""
    key = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory() as folder:
        gateway = GatewayProcess(
            Path(folder),
            {"WAITGATE_SECRET_KEYS": key, "WAITGATE_LOG_LEVEL": "warning", **(env or {})},
        )
        gateway.start()
        try:
            (api_key,) = gateway.admin_keys()
            auth = {**JSON, "x-n8n-api-key": api_key}
            create = b'{"workflowId": "bench"}'
            park = b'{"webhook": {"httpMethod": "POST"}}'
            creates: list[Request] = [("POST", "/api/v1/executions", create, auth)] * count
            parks: list[Request] = [
                ("POST", f"/api/v1/executions/{i}/wait", park, auth) for i in range(1, count + 1)
            ]
            created = asyncio.run(run(gateway.url, creates, connections))
            parked = asyncio.run(run(gateway.url, parks, connections))
            both = Result(
                count,
                created.seconds + parked.seconds,
                created.latencies_ms + parked.latencies_ms,
                created.statuses + parked.statuses,
            )
            paths = resume_paths(gateway.url, api_key)
            resumes: list[Request] = [("POST", paths[i], BODY, JSON) for i in range(1, count + 1)]
            resumed = asyncio.run(run(gateway.url, resumes, connections))
            return both, resumed
        finally:
            gateway.stop()


def postgres_two_replicas(count: int, connections: int) -> Result | None:
    """Resume throughput with two replicas on PostgreSQL (``WAITGATE_TEST_POSTGRES_URL``)."""
    admin = os.environ.get("WAITGATE_TEST_POSTGRES_URL")
    if not admin:
        print("postgres (2 replicas)       : skipped, WAITGATE_TEST_POSTGRES_URL is not set")
        return None
    database = f"waitgate_bench_{secrets.token_hex(4)}"
    _admin_sql(admin, f'CREATE DATABASE "{database}"')
    url = admin.rsplit("/", 1)[0] + "/" + database
    key = secrets.token_urlsafe(32)
    env = {
        "WAITGATE_DATABASE_URL": url,
        "WAITGATE_SECRET_KEYS": key,
        "WAITGATE_LOG_LEVEL": "warning",
    }
    try:
        with tempfile.TemporaryDirectory() as folder:
            replicas = [GatewayProcess(Path(folder), env, name=f"pg{n}") for n in range(2)]
            for replica in replicas:
                replica.start()
            try:
                api_key = next(k for r in replicas for k in r.admin_keys())
                auth = {**JSON, "x-n8n-api-key": api_key}
                creates: list[Request] = [
                    ("POST", "/api/v1/executions", b'{"workflowId": "b"}', auth)
                ] * count
                parks: list[Request] = [
                    ("POST", f"/api/v1/executions/{i}/wait", b'{"webhook": {}}', auth)
                    for i in range(1, count + 1)
                ]
                asyncio.run(run(replicas[0].url, creates, connections))
                asyncio.run(run(replicas[1].url, parks, connections))
                paths = resume_paths(replicas[0].url, api_key)
                halves: list[list[Request]] = [[], []]
                for i in range(1, count + 1):
                    halves[i % 2].append(("GET", paths[i], b"", {}))

                async def both() -> list[Result]:
                    return await asyncio.gather(
                        *(
                            run(r.url, h, connections // 2)
                            for r, h in zip(replicas, halves, strict=True)
                        )
                    )

                results = asyncio.run(both())
            finally:
                for replica in replicas:
                    replica.stop()
    finally:
        _admin_sql(admin, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    merged = Result(
        count,
        max(r.seconds for r in results),
        [x for r in results for x in r.latencies_ms],
        results[0].statuses + results[1].statuses,
    )
    print(f"postgres (2 replicas resume) : {merged.summary()}")
    return merged


def _admin_sql(admin_url: str, sql: str) -> None:
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


def main(count: int = 3000, connections: int = 32, rounds: int = 3) -> None:
    """Print medians of ``rounds`` runs of each figure."""
    ceilings, parks, resumes = [], [], []
    for _ in range(rounds):
        ceilings.append(ceiling_resume(count, connections))
        park, resume = gateway_park_and_resume(count, connections)
        parks.append(park)
        resumes.append(resume)
    c = statistics.median(r.rate for r in ceilings)
    p = statistics.median(r.rate for r in parks)
    r = statistics.median(r.rate for r in resumes)
    p99 = statistics.median(x.percentile(99) for x in resumes)
    print(f"ceiling  (verify + 1 UPDATE) : {c:8.0f} req/s   e.g. {ceilings[-1].summary()}")
    print(
        f"resume   (signed POST, 200 B): {r:8.0f} req/s = {r / c:5.0%} of ceiling, p99 {p99:.1f} ms"
    )
    print(f"park     (create + wait)     : {p:8.0f} executions/s = {p / c:5.0%} of ceiling")
    for name, results in (("resume", resumes), ("park", parks)):
        print(f"  {name} runs: " + " | ".join(x.summary() for x in results))
    postgres_two_replicas(count, connections)


if __name__ == "__main__":
    main()
