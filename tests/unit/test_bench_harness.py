"""The benchmark harness itself: wrk sends each listed request exactly once (tests/load)."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.load import ceiling
from tests.load.bench_throughput import BODY, JSON, _wait_for_port
from tests.load.wrk import drive
from tests.receiver import free_port

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
ROWS = 2_000
"""Enough for the aiosqlite thread to use several of /proc's 10 ms ticks on a slow machine
(300 rows took 58 ms in all once, and the thread's share rounded to nothing)."""


def test_each_signed_url_is_sent_once_and_a_replay_conflicts(tmp_path: Path) -> None:
    db = str(tmp_path / "ceiling.db")
    ceiling.prepare(db, ROWS)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tests.load.ceiling", db, str(port)])
    try:
        _wait_for_port(port)
        url = f"http://127.0.0.1:{port}"
        targets = [
            ("POST", f"/webhook-waiting/{i}?signature={ceiling.token(i)}")
            for i in range(1, ROWS + 1)
        ]
        first = drive(url, targets, BODY, JSON, connections=8, server_pids=[server.pid])
        again = drive(url, targets[:50], BODY, JSON, connections=8)
        forged = drive(url, [("POST", "/webhook-waiting/1?signature=1.forged")], BODY, JSON)
    finally:
        server.terminate()
        server.wait(10)
    assert (first.requests, first.non_2xx, first.socket_errors) == (ROWS, 0, 0)
    assert (again.requests, again.non_2xx) == (50, 50)  # already resumed: 409 each
    assert (forged.requests, forged.non_2xx) == (1, 1)
    assert first.p50_ms <= first.p99_ms
    assert first.server_cpu_seconds > 0
    assert 0 < first.loop_cpu_seconds < first.server_cpu_seconds  # the aiosqlite thread's too
    conn = sqlite3.connect(db)
    resumed = conn.execute("SELECT count(*) FROM waits WHERE status = 'resumed'").fetchone()[0]
    conn.close()
    assert resumed == ROWS
