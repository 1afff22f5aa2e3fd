"""``make bench``: every benchmark, with its ceiling measured in the same run."""

from __future__ import annotations

import sys

from tests.load import bench_throughput


def main() -> None:
    """Run the benchmarks named on the command line (default: all)."""
    chosen = set(sys.argv[1:]) or {"throughput"}
    if "throughput" in chosen:
        bench_throughput.main()


if __name__ == "__main__":
    main()
