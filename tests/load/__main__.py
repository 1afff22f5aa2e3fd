"""``make bench``: every benchmark, each with what it compares against measured in the same run.

``make bench`` runs them all; ``python -m tests.load throughput timers scale events`` picks
some.
"""

from __future__ import annotations

import platform
import sys

from tests.load import bench_events, bench_scale, bench_throughput, bench_timers


def main() -> None:
    """Run the benchmarks named on the command line (default: all)."""
    chosen = set(sys.argv[1:]) or {"throughput", "timers", "scale", "events"}
    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.platform()}"
    )
    if "throughput" in chosen:
        bench_throughput.main()
    if "timers" in chosen:
        bench_timers.main()
    if "scale" in chosen:
        bench_scale.main()
    if "events" in chosen:
        bench_events.main()


if __name__ == "__main__":
    main()
