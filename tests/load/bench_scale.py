"""Scale: one million parked waits in SQLite — memory, start-up, and listing pages."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from tests.load.bulk import fill
from tests.load.loadgen import Request, run
from tests.process import GatewayProcess

PARKED = 1_000_000
TENANTS = 100


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if entry.name == str(pid) or fields.get("PPid", "").strip() == str(pid):
            total += int(fields.get("VmRSS", "0 kB").split()[0])
    return total / 1024


def idle_rss_mb() -> float:
    """Resident memory of a gateway started on an empty database."""
    with tempfile.TemporaryDirectory() as folder:
        gateway = GatewayProcess(Path(folder), {"WAITGATE_LOG_LEVEL": "warning"})
        gateway.start()
        try:
            time.sleep(1.0)
            return _rss_mb(gateway.pid) if gateway.pid else float("nan")
        finally:
            gateway.stop()


def main(parked: int = PARKED, pages: int = 300) -> None:
    """Fill, start, measure; print the figures."""
    print(f"scale    gateway RSS idle (empty database): {idle_rss_mb():.0f} MB")
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "waitgate.db"
        started = time.monotonic()
        fill(db, parked, lambda n: None, lambda n: {"tenant": f"t-{n % TENANTS}"})
        print(f"scale    filled {parked:,} parked executions in {time.monotonic() - started:.0f} s")
        gateway = GatewayProcess(Path(folder), {"WAITGATE_LOG_LEVEL": "warning"})
        started = time.monotonic()
        gateway.start()
        ready = time.monotonic() - started
        try:
            api_key = gateway.admin_keys()[0]
            auth = {"x-n8n-api-key": api_key}
            waiting: list[Request] = [
                ("GET", "/api/v1/executions?status=waiting&limit=100", b"", auth)
            ] * pages
            filtered: list[Request] = [
                (
                    "GET",
                    f"/api/v1/executions?customData[tenant]=t-{n % TENANTS}&limit=100",
                    b"",
                    auth,
                )
                for n in range(pages)
            ]
            plain = asyncio.run(run(gateway.url, waiting, connections=1))
            by_data = asyncio.run(run(gateway.url, filtered, connections=1))
            pid = gateway.pid
            rss = _rss_mb(pid) if pid else float("nan")
        finally:
            gateway.stop()
    print(
        f"scale    start-up to ready {ready:.2f} s; gateway RSS {rss:.0f} MB with {parked:,} "
        "parked (target <= 55 MB)"
    )
    print(
        f"scale    status=waiting page : p50 {plain.percentile(50):.1f} ms, "
        f"p99 {plain.percentile(99):.1f} ms"
    )
    print(
        f"scale    customData page     : p50 {by_data.percentile(50):.1f} ms, "
        f"p99 {by_data.percentile(99):.1f} ms (one tenant of {TENANTS})"
    )


if __name__ == "__main__":
    main()
