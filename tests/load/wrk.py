"""Drive a server with ``wrk`` (1 thread, keep-alive connections), each target sent once.

``wrk`` is written in C and uses a fraction of a core where the server under test uses a whole
one, so on a two-core machine the load generator is not what limits the figures: each result
carries the CPU time ``wrk`` and the server used, to show it. Requests are listed in a file
that ``wrk_requests.lua`` sends in order, so every resume has its own signed URL.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("wrk_requests.lua")
INSTALL_HINT = "wrk is not installed: apt-get install wrk (Debian/Ubuntu package `wrk`)"


def require_wrk() -> str:
    """The path of ``wrk``; exits with how to install it when it is missing."""
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit(INSTALL_HINT)
    return found


@dataclass(frozen=True)
class WrkResult:
    """What one ``wrk`` run measured."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int
    wrk_cpu_seconds: float
    server_cpu_seconds: float
    loop_cpu_seconds: float = 0.0
    """Of ``server_cpu_seconds``, what the servers' main threads used (their event loops; the
    rest is the other threads: the SQLite writer and readers, the resolver)."""

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        """One line of figures."""
        return (
            f"{self.rate:7.0f} req/s  p50 {self.p50_ms:5.1f} ms  p99 {self.p99_ms:5.1f} ms  "
            f"non-2xx {self.non_2xx}  cpu: server {self.server_cpu_seconds:.1f} s, "
            f"wrk {self.wrk_cpu_seconds:.1f} s"
        )


def cpu_seconds(pids: list[int], *, main_threads: bool = False) -> float:
    """User + system CPU time used so far by these processes (and their reaped children), or
    with ``main_threads`` by their main threads alone."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        stat = f"/proc/{pid}/task/{pid}/stat" if main_threads else f"/proc/{pid}/stat"
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, and for a process cutime, cstime (a thread's are its process's)
        total += sum(int(f) for f in fields[11 : 13 if main_threads else 15])
    return total / tick


def group_pids(leader: int) -> list[int]:
    """The processes of ``leader``'s process group (a server and its workers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == leader:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids or [leader]


def drive(
    base_url: str,
    targets: list[tuple[str, str]],
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    connections: int = 32,
    server_pids: list[int] | None = None,
    max_seconds: int = 600,
) -> WrkResult:
    """Send each ``(method, target)`` once over ``connections`` keep-alive connections."""
    wrk = require_wrk()
    with tempfile.TemporaryDirectory() as folder:
        listing = Path(folder) / "targets"
        listing.write_text("".join(f"{method} {target}\n" for method, target in targets))
        payload = Path(folder) / "body"
        payload.write_bytes(body)
        extra = [f"{k}: {v}" for k, v in (headers or {}).items()]
        command = [wrk, "-t1", f"-c{connections}", f"-d{max_seconds}s", "--timeout", "10s"]
        marker = Path(folder) / "finished"
        command += ["-s", str(SCRIPT), base_url, "--", str(listing), str(payload), str(marker)]
        command += extra
        before = cpu_seconds(server_pids or [])
        loop_before = cpu_seconds(server_pids or [], main_threads=True)
        out_path, err_path = Path(folder) / "out", Path(folder) / "err"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            process = subprocess.Popen(command, stdout=out, stderr=err)
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            while pid == 0 and not marker.exists():
                time.sleep(0.002)
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid == 0:
                process.send_signal(signal.SIGINT)
                _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
        after = cpu_seconds(server_pids or [])
        loop_after = cpu_seconds(server_pids or [], main_threads=True)
        if process.returncode != 0:
            raise RuntimeError(f"wrk failed ({process.returncode}): {err_path.read_text()[-2000:]}")
        line = next(x for x in out_path.read_text().splitlines() if x.startswith("{"))
    figures = json.loads(line)
    return WrkResult(
        requests=figures["requests"],
        seconds=figures["duration_us"] / 1e6,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        max_ms=figures["max_us"] / 1000,
        non_2xx=figures["non_2xx"],
        socket_errors=sum(
            figures[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
        ),
        wrk_cpu_seconds=usage.ru_utime + usage.ru_stime,
        server_cpu_seconds=after - before,
        loop_cpu_seconds=loop_after - loop_before,
    )
