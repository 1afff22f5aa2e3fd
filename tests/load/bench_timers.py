"""Timer precision: 100,000 parked waits, 10,000 of them due within the same second."""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from tests.load.bulk import fill
from tests.process import GatewayProcess

PARKED = 100_000
DUE_TOGETHER = 10_000


def one_run(lead_seconds: float = 8.0) -> tuple[float, float, float, int]:
    """(p50, p99, max lateness in ms, how many resumed) for one run."""
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "waitgate.db"
        due_at = int((time.time() + lead_seconds) * 1000)
        far = due_at + 3_600_000

        def deadline(n: int) -> int:
            return due_at + (n * 1000) // DUE_TOGETHER if n < DUE_TOGETHER else far + n

        fill(db, PARKED, deadline)
        gateway = GatewayProcess(Path(folder), {"WAITGATE_LOG_LEVEL": "warning"})
        gateway.start()
        try:
            time.sleep(max(0.0, (due_at + 1000) / 1000 - time.time()) + 1.5)
        finally:
            gateway.stop()
        conn = sqlite3.connect(db)
        late = [
            row[0]
            for row in conn.execute(
                "SELECT resumed_at - wait_till FROM waits WHERE resumed_at IS NOT NULL"
            )
        ]
        conn.close()
    late.sort()
    p99 = late[int(len(late) * 0.99) - 1] if late else float("nan")
    return statistics.median(late), p99, max(late), len(late)


def main(rounds: int = 3) -> None:
    """Print the medians of ``rounds`` runs."""
    runs = [one_run() for _ in range(rounds)]
    p50 = statistics.median(r[0] for r in runs)
    p99 = statistics.median(r[1] for r in runs)
    worst = max(r[2] for r in runs)
    print(
        f"timers   ({PARKED:,} parked, {DUE_TOGETHER:,} due in one second): "
        f"lateness p50 {p50:.0f} ms, p99 {p99:.0f} ms, worst {worst:.0f} ms; "
        f"resumed per run {[r[3] for r in runs]} (n8n polls every 60 s: up to 60,000 ms)"
    )


if __name__ == "__main__":
    main()
