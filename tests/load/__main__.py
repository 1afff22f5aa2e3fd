"""``make bench``: every benchmark, each with what it compares against measured in the same run.

``make bench`` runs them all; ``python -m tests.load throughput scaling timers scale events``
picks some. Throughput and scaling need ``wrk`` (Debian/Ubuntu: ``apt-get install wrk``);
PostgreSQL figures need ``WAITGATE_TEST_POSTGRES_URL``. ``instructions`` (callgrind's counts
per resume and park against the ceiling's, a few minutes; needs valgrind) runs only when named.
"""

from __future__ import annotations

import os
import platform
import sys
import time

from tests.load import (
    bench_events,
    bench_instructions,
    bench_scale,
    bench_scaling,
    bench_throughput,
    bench_timers,
)
from tests.load.wrk import require_wrk


def main() -> None:
    """Run the benchmarks named on the command line (default: all)."""
    chosen = set(sys.argv[1:]) or {"throughput", "scaling", "timers", "scale", "events"}
    if chosen & {"throughput", "scaling"}:
        require_wrk()
    started = time.monotonic()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}, {platform.platform()}; "
        f"load average before: {os.getloadavg()[0]:.1f}"
    )
    if "throughput" in chosen:
        bench_throughput.main()
    if "scaling" in chosen:
        bench_scaling.main()
    if "timers" in chosen:
        bench_timers.main()
    if "scale" in chosen:
        bench_scale.main()
    if "events" in chosen:
        bench_events.main()
    if "instructions" in chosen:
        bench_instructions.main()
    print(
        f"done in {(time.monotonic() - started) / 60:.1f} min; "
        f"load average after: {os.getloadavg()[0]:.1f} (figures from a busy machine are low)"
    )


if __name__ == "__main__":
    main()
