"""Resume and park throughput of a real ``waitgate serve`` against the honest ceiling.

Everything is driven by ``wrk`` (1 thread, 32 keep-alive connections, each request target sent
once: ``tests/load/wrk.py``) in the same run, rounds interleaved (ceiling, gateway as shipped,
gateway at ``warning``) so that a change in the machine's load moves all of them alike; the
ratios are medians of the per-round ratios.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import msgspec

from tests.load import ceiling
from tests.load.loadgen import Request, run
from tests.load.wrk import WrkResult, cpu_seconds, drive, group_pids
from tests.process import GatewayProcess
from tests.receiver import free_port

BODY = msgspec.json.encode({"approved": True, "by": "someone@example.com", "note": "x" * 140})
JSON = {"content-type": "application/json"}
CREATE = b'{"workflowId": "bench"}'
PARK = b'{"webhook": {"httpMethod": "POST"}}'
CREATE_PARKED = b'{"workflowId": "bench", "wait": ' + PARK + b"}"
CONNECTIONS = 32
CEILING_ROWS = 30_000
PARKED = 10_000


@dataclass(frozen=True)
class GatewayFigures:
    """Park and resume as measured on one gateway (or a set of replicas)."""

    create: WrkResult
    wait: WrkResult
    create_parked: WrkResult
    """``POST /executions`` with ``wait``: created and parked in one request."""
    resume: WrkResult

    @property
    def park_rate(self) -> float:
        """Executions created and parked per second, one request each (as the client and
        the engine adapters park)."""
        return self.create_parked.rate

    @property
    def two_call_park_rate(self) -> float:
        """Executions created and parked per second, by a create then a park."""
        return self.create.requests / (self.create.seconds + self.wait.seconds)


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


def ceiling_resume(rows: int = CEILING_ROWS, *, python_loadgen: int = 0) -> WrkResult:
    """Resume ``rows`` rows through the ceiling app with wrk. With ``python_loadgen``, first
    resume that many through ``tests/load/loadgen.py`` and print its rate beside wrk's."""
    with tempfile.TemporaryDirectory() as folder:
        db = str(Path(folder) / "ceiling.db")
        ceiling.prepare(db, rows + python_loadgen)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "tests.load.ceiling", db, str(port)])
        try:
            _wait_for_port(port)
            url = f"http://127.0.0.1:{port}"
            first = 1
            if python_loadgen:
                requests: list[Request] = [
                    ("POST", f"/webhook-waiting/{i}?signature={ceiling.token(i)}", BODY, JSON)
                    for i in range(1, python_loadgen + 1)
                ]
                slow = asyncio.run(run(url, requests, CONNECTIONS))
                print(f"  load generator check, ceiling driven by loadgen.py: {slow.summary()}")
                first = python_loadgen + 1
            targets = [
                ("POST", f"/webhook-waiting/{i}?signature={ceiling.token(i)}")
                for i in range(first, first + rows)
            ]
            return drive(url, targets, BODY, JSON, server_pids=[server.pid])
        finally:
            server.terminate()
            server.wait(10)


def park_and_resume(
    replicas: list[GatewayProcess], api_key: str, count: int, connections: int = CONNECTIONS
) -> GatewayFigures:
    """Create ``count`` executions and park each on a webhook (a create then a park), resume
    each by its URL, then create ``count`` more parked in one request each; with several
    replicas, each gets an equal share of the connections and the requests."""
    auth = {**JSON, "x-n8n-api-key": api_key}
    pids = [p for r in replicas if r.pid for p in group_pids(r.pid)]

    def spread(targets: list[tuple[str, str]], body: bytes, headers: dict[str, str]) -> WrkResult:
        if len(replicas) == 1:
            return drive(
                replicas[0].url, targets, body, headers, connections=connections, server_pids=pids
            )
        return _drive_replicas(replicas, targets, body, headers, connections, pids)

    create = spread([("POST", "/api/v1/executions")] * count, CREATE, auth)
    wait = spread(
        [("POST", f"/api/v1/executions/{i}/wait") for i in range(1, count + 1)], PARK, auth
    )
    paths = resume_paths(replicas[0].url, api_key)
    resume = spread([("POST", paths[i]) for i in sorted(paths)], BODY, JSON)
    create_parked = spread([("POST", "/api/v1/executions")] * count, CREATE_PARKED, auth)
    figures = GatewayFigures(create, wait, create_parked, resume)
    for name, result in dataclasses.asdict(figures).items():
        if result["non_2xx"] or result["socket_errors"] or result["requests"] != count:
            raise RuntimeError(f"{name}: {result['requests']} of {count} answered: {result}")
    return figures


def _drive_replicas(
    replicas: list[GatewayProcess],
    targets: list[tuple[str, str]],
    body: bytes,
    headers: dict[str, str],
    connections: int,
    pids: list[int],
) -> WrkResult:
    """One wrk per replica at once, each with its share; figures merged (p99: the worst)."""
    from concurrent.futures import ThreadPoolExecutor

    shares = [targets[n :: len(replicas)] for n in range(len(replicas))]
    each = max(1, connections // len(replicas))
    before = cpu_seconds(pids)
    loop_before = cpu_seconds(pids, main_threads=True)
    with ThreadPoolExecutor(len(replicas)) as pool:
        results = list(
            pool.map(
                lambda pair: drive(pair[0].url, pair[1], body, headers, connections=each),
                zip(replicas, shares, strict=True),
            )
        )
    return WrkResult(
        requests=sum(r.requests for r in results),
        seconds=max(r.seconds for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=max(r.p99_ms for r in results),
        max_ms=max(r.max_ms for r in results),
        non_2xx=sum(r.non_2xx for r in results),
        socket_errors=sum(r.socket_errors for r in results),
        wrk_cpu_seconds=sum(r.wrk_cpu_seconds for r in results),
        server_cpu_seconds=cpu_seconds(pids) - before,
        loop_cpu_seconds=cpu_seconds(pids, main_threads=True) - loop_before,
    )


def gateway_figures(
    env: dict[str, str] | None = None, count: int = PARKED, workers: int = 1
) -> GatewayFigures:
    """Park and resume on one fresh ``waitgate serve`` (SQLite unless ``env`` says)."""
    with tempfile.TemporaryDirectory() as folder:
        gateway = GatewayProcess(
            Path(folder),
            {"WAITGATE_SECRET_KEYS": secrets.token_urlsafe(32), **(env or {})},
            workers=workers,
        )
        gateway.start()
        try:
            (api_key,) = gateway.admin_keys()
            return park_and_resume([gateway], api_key, count)
        finally:
            gateway.stop()


def _ratio(figures: list[GatewayFigures], ceilings: list[WrkResult], park: bool) -> float:
    """The median of the per-round ratios to the ceiling of the same round."""
    return statistics.median(
        (f.park_rate if park else f.resume.rate) / c.rate
        for f, c in zip(figures, ceilings, strict=True)
    )


def main(rounds: int = 3) -> None:
    """Print the medians of ``rounds`` interleaved rounds, with the targets of issue 16."""
    ceilings: list[WrkResult] = []
    shipped: list[GatewayFigures] = []
    quiet: list[GatewayFigures] = []
    for n in range(rounds):
        ceilings.append(ceiling_resume(python_loadgen=10_000 if n == 0 else 0))
        shipped.append(gateway_figures())
        quiet.append(gateway_figures({"WAITGATE_LOG_LEVEL": "warning"}))
    c = statistics.median(x.rate for x in ceilings)
    print(
        f"ceiling  Starlette + itsdangerous + aiosqlite UPDATE/COMMIT (FULL): {c:6.0f} req/s, "
        f"p99 {statistics.median(x.p99_ms for x in ceilings):5.1f} ms, "
        f"{statistics.median(_cpu_us(x) for x in ceilings):4.0f} us CPU/request "
        f"(event loop {statistics.median(_loop_us(x) for x in ceilings):.0f})"
    )
    for name, figures in (("as shipped (info)", shipped), ("log level warning", quiet)):
        resume = statistics.median(f.resume.rate for f in figures)
        print(
            f"resume   {name:<18}: {resume:6.0f} req/s = {_ratio(figures, ceilings, False):4.0%} "
            f"of ceiling (target >= 60%), "
            f"p99 {statistics.median(f.resume.p99_ms for f in figures):5.1f} ms (target <= 25), "
            f"{statistics.median(_cpu_us(f.resume) for f in figures):4.0f} us CPU/request "
            f"(event loop {statistics.median(_loop_us(f.resume) for f in figures):.0f})"
        )
        park = statistics.median(f.park_rate for f in figures)
        cpu = statistics.median(_cpu_us(f.create_parked) for f in figures)
        loop = statistics.median(_loop_us(f.create_parked) for f in figures)
        print(
            f"park     {name:<18}: {park:6.0f} executions/s = "
            f"{_ratio(figures, ceilings, True):4.0%} of ceiling (target >= 35%), "
            f"p99 {statistics.median(f.create_parked.p99_ms for f in figures):5.1f} ms, "
            f"{cpu:4.0f} us CPU/execution (event loop {loop:.0f}; one request: create with wait)"
        )
        two = statistics.median(f.two_call_park_rate for f in figures)
        two_ratio = statistics.median(
            f.two_call_park_rate / c.rate for f, c in zip(figures, ceilings, strict=True)
        )
        cpu = statistics.median(_cpu_us(f.create) + _cpu_us(f.wait) for f in figures)
        print(
            f"         {'':<18}  {two:6.0f} executions/s = {two_ratio:4.0%} by create then "
            f"wait (two requests), {cpu:4.0f} us CPU/execution"
        )
    print("  each round (ceiling | resume at info | resume at warning | park at info):")
    for x, s, q in zip(ceilings, shipped, quiet, strict=True):
        print(f"    {x.summary()}\n    {s.resume.summary()}\n    {q.resume.summary()}")
        print(
            f"    {s.create_parked.summary()} = {s.park_rate / x.rate:.0%} of this round's ceiling"
        )
    busiest = max(x.wrk_cpu_seconds / x.seconds for x in ceilings)
    print(
        f"  wrk used at most {busiest:.0%} of one core while driving the ceiling, which "
        "answers faster than the gateway: the load generator is not the limit"
    )


def _cpu_us(result: WrkResult) -> float:
    """Server CPU time per request in microseconds (less sensitive to a busy machine)."""
    return result.server_cpu_seconds / result.requests * 1e6 if result.requests else 0.0


def _loop_us(result: WrkResult) -> float:
    """Of ``_cpu_us``, the servers' event-loop (main) threads' part: the rest is the database
    threads', and a resume's rate is one over the sum (docs/performance.md, session 8)."""
    return result.loop_cpu_seconds / result.requests * 1e6 if result.requests else 0.0


if __name__ == "__main__":
    main()
