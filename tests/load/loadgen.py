"""A small HTTP/1.1 load generator on raw asyncio streams (keep-alive, fixed connections).

It is lighter than a general client, so more of the machine's two cores go to the server
under test. Each connection sends its next request as soon as the previous answer is read.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Result:
    """What one run measured."""

    requests: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """A latency percentile in ms."""
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]

    def summary(self) -> str:
        """One line of figures."""
        median = statistics.median(self.latencies_ms) if self.latencies_ms else 0.0
        return (
            f"{self.rate:8.0f} req/s  p50 {median:6.2f} ms  p99 {self.percentile(99):6.2f} ms  "
            f"statuses {dict(self.statuses)}"
        )


Request = tuple[str, str, bytes, dict[str, str]]
"""(method, path with query, body, extra headers)"""


async def _connection(
    host: str,
    port: int,
    next_request: Callable[[], Request | None],
    result: Result,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while (request := next_request()) is not None:
            method, target, body, headers = request
            head = f"{method} {target} HTTP/1.1\r\nhost: {host}:{port}\r\n"
            head += f"content-length: {len(body)}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            started = time.perf_counter()
            writer.write(head.encode() + b"\r\n" + body)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if length:
                await reader.readexactly(length)
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            result.statuses[int(status_line.split()[1])] += 1
    finally:
        writer.close()


async def run(base_url: str, requests: list[Request], connections: int = 32) -> Result:
    """Send ``requests`` over ``connections`` keep-alive connections as fast as answered."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    queue = iter(requests)

    def next_request() -> Request | None:
        return next(queue, None)

    result = Result(len(requests), 0.0)
    started = time.perf_counter()
    await asyncio.gather(
        *(_connection(host, port, next_request, result) for _ in range(connections))
    )
    result.seconds = time.perf_counter() - started
    return result
