"""One supervisor for every background loop: timer, dispatcher, audit flush, pruner, clock.

Each loop is written as one iteration at a time (``Loop.step``); the supervisor calls it
again and again. An exception in an iteration is logged (action ``background.error``),
counted (``waitgate_background_errors_total{task=…}``) and followed by an exponential,
capped pause, after which the loop carries on. A task that ends while the gateway is not
stopping (cancelled from outside, or killed by a ``BaseException``) is logged at error level
(action ``background.died``) and named by ``dead()``, which makes ``/readyz`` answer 503.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from gateway import metrics
from gateway.clock import Clock

log = logging.getLogger("waitgate.supervisor")


class Loop(abc.ABC):
    """A background loop: ``step`` is one iteration; ``wake`` cuts the pause after it short."""

    name: ClassVar[str]

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.stopping = False

    @abc.abstractmethod
    async def step(self) -> int | None:
        """Do one iteration; how many ms to pause before the next (``None``: until woken)."""

    async def drain(self) -> None:  # noqa: B027 - most loops have nothing left to do
        """Last work once the loop is asked to stop (the audit trail's final flush)."""

    def stop(self) -> None:
        """Ask the loop to end after its current iteration."""
        self.stopping = True
        self.wake.set()


@dataclass(frozen=True)
class Backoff:
    """The pause after consecutive failed iterations: ``base_ms`` doubling up to ``max_ms``."""

    base_ms: int = 500
    max_ms: int = 30_000

    def delay_ms(self, failures: int) -> int:
        """The pause after the ``failures``-th failure in a row (1-based)."""
        return min(self.base_ms << min(failures - 1, 30), self.max_ms)


class Supervisor:
    """Runs loops as tasks, keeps them alive through errors, and stops them gracefully."""

    def __init__(self, clock: Clock, loops: Sequence[Loop], backoff: Backoff | None = None) -> None:
        self._clock = clock
        self._loops = list(loops)
        self._backoff = backoff or Backoff()
        self._stopped = asyncio.Event()
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def start(self) -> None:
        """Start one task per loop (named ``waitgate-<loop name>``)."""
        for loop in self._loops:
            task = asyncio.create_task(self._supervise(loop), name=f"waitgate-{loop.name}")
            task.add_done_callback(self._ended)
            self.tasks[task.get_name()] = task

    def dead(self) -> list[str]:
        """The tasks that have ended although nobody asked them to stop."""
        if self._stopped.is_set():
            return []
        return sorted(name for name, task in self.tasks.items() if task.done())

    async def stop(self, timeout_seconds: float) -> None:
        """Ask every loop to stop; cancel those still running after ``timeout_seconds``."""
        self._stopped.set()
        for loop in self._loops:
            loop.stop()
        tasks = list(self.tasks.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout_seconds)
        for task in pending:
            log.warning(
                "%s did not stop in time", task.get_name(), extra={"action": "gateway.abort"}
            )
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _supervise(self, loop: Loop) -> None:
        failures = 0
        while not loop.stopping:
            loop.wake.clear()
            try:
                pause = await loop.step()
            except Exception as exc:
                failures += 1
                pause = self._backoff.delay_ms(failures)
                self._failed(loop, exc, failures, pause)
                await self._clock.wait(self._stopped, pause)
                continue
            failures = 0
            await self._clock.wait(loop.wake, pause)
        try:
            await loop.drain()
        except Exception as exc:
            self._failed(loop, exc, 1, None)

    def _failed(self, loop: Loop, exc: Exception, failures: int, pause: int | None) -> None:
        metrics.BACKGROUND_ERRORS.labels(loop.name).inc()
        log.warning(
            "%s failed: %s: %s",
            loop.name,
            type(exc).__name__,
            exc,
            exc_info=exc,
            extra={
                "action": "background.error",
                "task": loop.name,
                "failures": failures,
                "retry_in_ms": pause,
            },
        )

    def _ended(self, task: asyncio.Task[None]) -> None:
        if self._stopped.is_set():
            return
        cause = None if task.cancelled() else task.exception()
        log.error(
            "background task %s ended unexpectedly; /readyz now fails",
            task.get_name(),
            exc_info=cause,
            extra={"action": "background.died", "task": task.get_name()},
        )
