"""The scheduler: sleeps until the next deadline, wakes for nearer ones, catches up at start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateway.clock import ManualClock
from gateway.domain import NewExecution, Status
from gateway.scheduler import Scheduler
from gateway.supervisor import Supervisor
from persistence.base import Store

MAX_SLEEP_MS = 60_000


async def eventually(check: Callable[[], Awaitable[bool]], attempts: int = 500) -> None:
    """Let background tasks (and the store's threads) run until ``check`` holds."""
    for _ in range(attempts):
        if await check():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("condition never held")


async def status_of(store: Store, eid: int) -> Status:
    execution = await store.get_execution(eid)
    assert execution is not None
    return execution.status


async def parked(store: Store, clock: ManualClock, in_ms: int) -> int:
    eid = (await store.create_execution(NewExecution("wf"), clock.now_ms())).id
    await store.park(eid, clock.now_ms() + in_ms, None, clock.now_ms())
    return eid


@pytest.fixture
async def scheduler(store: Store, clock: ManualClock) -> AsyncIterator[Scheduler]:
    the_scheduler = Scheduler(store, clock, batch_size=3, max_sleep_ms=MAX_SLEEP_MS)
    supervisor = Supervisor(clock, [the_scheduler])
    supervisor.start()
    yield the_scheduler
    await supervisor.stop(5)
    assert supervisor.tasks["waitgate-scheduler"].done()


async def test_fires_at_the_deadline_not_before(
    store: Store, clock: ManualClock, scheduler: Scheduler
) -> None:
    eid = await parked(store, clock, 2000)
    scheduler.notify(clock.now_ms() + 2000)
    clock.advance(1999)
    await asyncio.sleep(0.05)
    assert await status_of(store, eid) is Status.WAITING
    clock.advance(1)
    await eventually(lambda: _is(store, eid, Status.RUNNING))
    wait = await store.get_wait(eid, 1)
    assert wait is not None
    assert wait.resumed_at == wait.wait_till  # zero lateness on the injected clock


async def test_a_nearer_deadline_wakes_the_sleeping_loop(
    store: Store, clock: ManualClock, scheduler: Scheduler
) -> None:
    far = await parked(store, clock, 50_000)
    scheduler.notify(clock.now_ms() + 50_000)
    await asyncio.sleep(0.02)  # the loop is now asleep until the far deadline
    near = await parked(store, clock, 100)
    scheduler.notify(clock.now_ms() + 100)
    await asyncio.sleep(0.02)
    clock.advance(100)
    await eventually(lambda: _is(store, near, Status.RUNNING))
    assert await status_of(store, far) is Status.WAITING


async def test_everything_overdue_resumes_at_start_in_batches(
    store: Store, clock: ManualClock
) -> None:
    ids = [await parked(store, clock, 10 * i) for i in range(1, 8)]
    future = await parked(store, clock, 10_000)
    clock.advance(1000)  # the gateway was "down" while these fell due
    scheduler = Scheduler(store, clock, batch_size=3, max_sleep_ms=MAX_SLEEP_MS)
    assert await scheduler.run_due() == 7
    for eid in ids:
        assert await status_of(store, eid) is Status.RUNNING
    assert await status_of(store, future) is Status.WAITING


async def test_stop_ends_the_loop_promptly(store: Store, clock: ManualClock) -> None:
    scheduler = Scheduler(store, clock, batch_size=10, max_sleep_ms=MAX_SLEEP_MS)
    supervisor = Supervisor(clock, [scheduler])
    supervisor.start()
    await asyncio.sleep(0.02)
    await asyncio.wait_for(supervisor.stop(5), 1)
    assert supervisor.tasks["waitgate-scheduler"].done()


async def _is(store: Store, eid: int, status: Status) -> bool:
    return await status_of(store, eid) is status
