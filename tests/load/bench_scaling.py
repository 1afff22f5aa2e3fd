"""Both cores and several replicas: ``--workers 2`` on SQLite and PostgreSQL, and a PostgreSQL
curve of 1, 2 and 3 replicas on one database, each with the CPU time every party used.

Same wrk load as ``bench_throughput`` (32 connections in all, shared among the replicas), as
shipped (log level ``info``). PostgreSQL runs only with ``WAITGATE_TEST_POSTGRES_URL``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.load.bench_throughput import PARKED, GatewayFigures, gateway_figures, park_and_resume
from tests.load.wrk import cpu_seconds
from tests.process import GatewayProcess


def _postgres_pids() -> list[int]:
    """Every PostgreSQL server process on this machine (other users' work included)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@contextmanager
def _database(admin: str) -> Iterator[str]:
    """A fresh database on the server of ``admin`` (dropped afterwards); its URL."""
    name = f"waitgate_bench_{secrets.token_hex(4)}"
    _admin_sql(admin, f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0] + "/" + name
    finally:
        _admin_sql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin_sql(admin_url: str, sql: str) -> None:
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


def postgres_replicas(
    admin: str, replicas: int, count: int = PARKED, workers: int = 1
) -> tuple[GatewayFigures, float]:
    """Park and resume through ``replicas`` gateways on one fresh PostgreSQL database; the
    figures and the CPU seconds PostgreSQL used during the resumes."""
    with _database(admin) as url, tempfile.TemporaryDirectory() as folder:
        env = {"WAITGATE_DATABASE_URL": url, "WAITGATE_SECRET_KEYS": secrets.token_urlsafe(32)}
        gateways = [
            GatewayProcess(Path(folder), env, name=f"pg{n}", workers=workers)
            for n in range(replicas)
        ]
        for gateway in gateways:
            gateway.start()
        try:
            api_key = next(k for g in gateways for k in g.admin_keys())
            postgres = _postgres_pids()
            before = cpu_seconds(postgres)
            figures = park_and_resume(gateways, api_key, count)
            return figures, cpu_seconds(postgres) - before
        finally:
            for gateway in gateways:
                gateway.stop()


def _line(name: str, figures: GatewayFigures, extra: str = "") -> str:
    resume = figures.resume
    return (
        f"{name:<34}: resume {resume.rate:6.0f} req/s, p99 {resume.p99_ms:6.1f} ms; "
        f"park {figures.park_rate:6.0f} executions/s{extra}"
    )


def main() -> None:
    """Print ``--workers 2`` on SQLite, then the PostgreSQL figures when a server is given."""
    one = gateway_figures()
    two = gateway_figures(workers=2)
    print(_line("sqlite, 1 worker (as shipped)", one))
    print(
        _line("sqlite, --workers 2", two) + f"  (x{two.resume.rate / one.resume.rate:.2f} resume, "
        f"x{two.park_rate / one.park_rate:.2f} park)"
    )
    admin = os.environ.get("WAITGATE_TEST_POSTGRES_URL")
    if not admin:
        print("postgres: skipped, WAITGATE_TEST_POSTGRES_URL is not set")
        return
    base = None
    for replicas in (1, 2, 3):
        figures, pg_cpu = postgres_replicas(admin, replicas)
        base = base or figures
        seconds = figures.resume.seconds
        print(
            _line(f"postgres, {replicas} replica(s) x 1 worker", figures)
            + f"  (x{figures.resume.rate / base.resume.rate:.2f}); during resumes CPU: "
            f"gateways {figures.resume.server_cpu_seconds / seconds:.2f} cores, "
            f"postgres {pg_cpu / seconds:.2f} cores, wrk "
            f"{figures.resume.wrk_cpu_seconds / seconds:.2f} cores"
        )
    figures, pg_cpu = postgres_replicas(admin, 1, workers=2)
    print(
        _line("postgres, 1 replica x --workers 2", figures)
        + f"  (postgres {pg_cpu / figures.resume.seconds:.2f} cores)"
    )


if __name__ == "__main__":
    main()
