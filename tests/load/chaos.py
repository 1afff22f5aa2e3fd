"""Chaos: duplicate and racing resume calls and events, stops and SIGKILLs against one
SQLite gateway.

``run_chaos`` parks executions at webhook waits, timer waits, waits for an event about their
order (alone, or with a URL and a deadline), waits that take either, and pairs of waits one
event fans out to, all with a callback URL on a real receiver. Over a window of ``seconds``
it fires every webhook URL two or three times (two calls at once, sometimes a late third),
sends signed events (``tests.load.chaos_events``: duplicates of one provider id, redeliveries
of cut ones, events before their park, strays), stops a few executions, and SIGKILLs and
restarts the gateway ``kills`` times; timers fall due meanwhile, some while the gateway is
down. A call cut by a kill is recorded as unknown, never as acknowledged. Then it checks
(``tests.load.chaos_check``), from the API and the receiver, that nothing acknowledged was
lost and nothing happened twice, and returns the figures (``python -m tests.load.chaos``
runs the long variant and prints them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from gateway.origins import origin_of
from tests.backends import POSTGRES_ENV, fresh_postgres_database, postgres_admin_url
from tests.load.chaos_check import Found, Named, check_invariants, expected_callbacks, unfired
from tests.load.chaos_events import Events, conditions, event_jobs
from tests.load.chaos_model import (
    RESUMED,
    SOURCE,
    Call,
    ChaosReport,
    Down,
    Journal,
    Plan,
    State,
    now_ms,
    request,
)
from tests.process import GatewayProcess
from tests.receiver import Receiver, running_receiver

__all__ = ["Call", "ChaosReport", "Journal", "Plan", "check_invariants", "run_chaos"]
ENV = {
    "WAITGATE_CALLBACK_TIMEOUT": "1",
    "WAITGATE_LOG_LEVEL": "warning",
}
CONCURRENCY = 32
SETTLE_SECONDS = 20.0
"""How long, at most, timers and then callbacks may take to catch up after the window."""
BURST = 0.12
"""The share of executions whose calls go out in the last 100 ms before a kill."""
EVENT_BURST = 0.3
"""The same for executions waiting for an event (and its deliveries): fewer, so more of them,
that some deliveries commit and lose their answer to the kill."""
KINDS = {
    "webhook": 40,
    "racing": 15,
    "timer": 12,
    "idle": 8,
    "event": 15,
    "fanout": 4,
    "lookback": 6,
}
"""How executions wait, by weight (a fan-out is two executions waiting for one event)."""
Job = Callable[[], Coroutine[Any, Any, None]]


async def _bounded(jobs: list[Awaitable[Any]], limit: int = CONCURRENCY) -> list[Any]:
    slots = asyncio.Semaphore(limit)

    async def run(job: Awaitable[Any]) -> Any:
        async with slots:
            return await job

    return await asyncio.gather(*(run(j) for j in jobs))


def _slots(executions: int, rng: random.Random) -> list[tuple[str, str | None]]:
    """How each of ``executions`` waits, in shares of ``KINDS`` (each kind at least once),
    and the order an event-waiting one waits on (both executions of a fan-out share theirs)."""
    total = sum(KINDS.values())
    counts = {kind: max(1, round(executions * weight / total)) for kind, weight in KINDS.items()}
    kinds = [kind for kind, n in counts.items() if kind != "webhook" for _ in range(n)]
    rng.shuffle(kinds)
    slots: list[tuple[str, str | None]] = []
    for kind in kinds:
        order = f"order-{len(slots)}"
        if kind == "fanout" and len(slots) + 2 <= executions:
            slots += [(kind, order)] * 2
        elif kind in {"event", "lookback"} and len(slots) < executions:
            slots.append((kind, order))
        elif kind != "fanout" and len(slots) < executions:
            slots.append((kind, None))
    slots += [("webhook", None)] * (executions - len(slots))
    rng.shuffle(slots)
    return slots


async def _park_one(
    http: httpx.AsyncClient,
    callback_url: str,
    seconds: float,
    rng: random.Random,
    kind: str,
    order: str | None,
) -> Plan:
    """Park one execution: mostly webhook waits, some timers, some both, some waiting for an
    event (alone, with a URL, with a deadline), some left alone; a lookback one is only
    created (it parks in the window, after its event)."""
    body: dict[str, Any] = {"workflowId": "chaos", "callbackUrl": callback_url}
    if order is not None:
        body["customData"] = {"orderId": order}
    created = await http.post("/api/v1/executions", json=body)
    created.raise_for_status()
    eid: int = created.json()["id"]
    if kind == "lookback":
        return Plan(eid, None, None, 0, stop=False, order=order, lookback=True)
    with_url = kind in {"webhook", "racing", "idle"}
    with_timer = kind in {"racing", "timer"}
    if kind == "event":
        with_url, with_timer = rng.choice(
            [(False, False), (True, False), (True, True), (False, True)]
        )
    deadline = None
    wait: dict[str, Any] = {}
    if with_timer:
        deadline = now_ms() + int(rng.uniform(0.5, seconds) * 1000)
        wait["waitTill"] = datetime.fromtimestamp(deadline / 1000, UTC).isoformat()
    if with_url:
        wait["webhook"] = {"httpMethod": "POST"}
    if order is not None:
        wait["events"] = conditions(order, literal=rng.random() < 0.5)
    parked = await http.post(f"/api/v1/executions/{eid}/wait", json=wait)
    assert parked.status_code == 200, (wait, parked.text)
    calls = rng.choice([2, 2, 3]) if kind in {"webhook", "racing"} else 0
    calls = rng.choice([1, 2]) if kind == "event" and with_url else calls
    stop = kind != "idle" and rng.random() < 0.06
    url = parked.json().get("resumeUrl") if with_url else None
    return Plan(eid, url, deadline, calls, stop, order=order)


def _call_job(http: httpx.AsyncClient, call: Call, url: str, body: Any = None) -> Job:
    async def job() -> None:
        await request(http, call, "POST", url, json=body)

    return job


def _kill_times(kills: int, seconds: float) -> list[float]:
    """When, from the start of the window, each SIGKILL comes."""
    return [seconds * (k + 1) / (kills + 1) for k in range(kills)]


def _jobs(
    http: httpx.AsyncClient,
    events: Events,
    plans: list[Plan],
    journal: Journal,
    kill_times: list[float],
    seconds: float,
    rng: random.Random,
) -> list[tuple[float, Job]]:
    """Each resume and stop call and each event at its moment in the window; duplicates
    start together, an execution's resume calls with the events about its order, and a burst
    of them just before each kill, so that some are in flight when it comes."""
    timed: list[tuple[float, Job]] = []
    ats: dict[int, float] = {}
    for plan in plans:
        calls = journal.resumes.setdefault(plan.eid, [])
        at = ats[plan.eid] = rng.uniform(0, seconds * 0.9)
        if kill_times and rng.random() < (BURST if plan.order is None else EVENT_BURST):
            at = ats[plan.eid] = max(0.0, rng.choice(kill_times) - rng.uniform(0, 0.1))
        for k in range(plan.calls):
            call = Call(f"{plan.eid}-{k}")
            calls.append(call)
            late = 0.0 if k < 2 else rng.uniform(0, 1.5)  # a third call replays later
            timed.append((at + late, _call_job(http, call, plan.resume_url or "", {"call": k})))
        if plan.stop:
            stop = journal.stops[plan.eid] = Call(f"{plan.eid}-stop")
            path = f"/api/v1/executions/{plan.eid}/stop"
            timed.append((rng.uniform(0, seconds * 0.9), _call_job(http, stop, path)))
    timed += event_jobs(events, plans, ats, journal, rng, seconds)
    rng.shuffle(timed)  # calls due at the same moment go out in random order
    timed.sort(key=lambda item: item[0])
    return timed


async def _dispatch(timed: list[tuple[float, Job]]) -> None:
    """Start every job at its offset from now; wait for all of them."""
    start = time.monotonic()
    tasks: list[asyncio.Task[None]] = []
    for offset, job in timed:
        await asyncio.sleep(max(0.0, start + offset - time.monotonic()))
        tasks.append(asyncio.create_task(job()))
    await asyncio.gather(*tasks)


async def _kill_loop(
    gateway: GatewayProcess, kills: int, seconds: float, journal: Journal, rng: random.Random
) -> None:
    """SIGKILL the gateway ``kills`` times, evenly over the window; restart it each time."""
    start = time.monotonic()
    for at in _kill_times(kills, seconds):
        await asyncio.sleep(max(0.0, start + at - time.monotonic()))
        down_at = now_ms()
        await asyncio.to_thread(gateway.kill)
        await asyncio.sleep(rng.uniform(0.2, 0.6))  # down a while: timers fall due meanwhile
        await asyncio.to_thread(gateway.start)
        journal.down.append((down_at, now_ms()))
        journal.kills += 1


async def _states(http: httpx.AsyncClient, eids: list[int]) -> dict[int, State]:
    async def one(eid: int) -> State:
        response = await http.get(f"/api/v1/executions/{eid}", params={"includeData": "true"})
        response.raise_for_status()
        found: State = response.json()
        return found

    return dict(zip(eids, await _bounded([one(e) for e in eids]), strict=True))


async def _settle(http: httpx.AsyncClient, plans: list[Plan], down: Down) -> dict[int, State]:
    """Final states, after every timer due by the end of the window had time to fire."""
    last = max((p.deadline for p in plans if p.deadline is not None), default=0)
    await asyncio.sleep(max(0.0, (last - now_ms()) / 1000))
    states = await _states(http, [p.eid for p in plans])
    give_up = time.monotonic() + SETTLE_SECONDS
    while (pending := unfired(plans, states, now_ms(), down)) and time.monotonic() < give_up:
        await asyncio.sleep(0.2)
        states.update(await _states(http, pending))
    return states


def _callback_ids(receiver: Receiver) -> tuple[Found, Named]:
    """The receiver's webhook-ids per (execution, callback type), and the event ids its resume
    callbacks named per execution."""
    found: Found = {}
    named: Named = {}
    for got in list(receiver.received):
        event = json.loads(got.body)
        data = event["data"]
        key = (int(data["executionId"]), str(event["type"]))
        found.setdefault(key, set()).add(got.headers["webhook-id"])
        if event["type"] == RESUMED and data.get("resumedBy") == "event":
            named.setdefault(key[0], set()).add(str((data.get("payload") or {}).get("eventId")))
    return found, named


async def _callbacks(receiver: Receiver, expected: set[tuple[int, str]]) -> tuple[Found, Named]:
    """``_callback_ids``, once every expected callback arrived."""
    give_up = time.monotonic() + SETTLE_SECONDS
    while True:
        receiver.arrived.clear()
        found, named = _callback_ids(receiver)
        left = give_up - time.monotonic()
        if expected <= set(found) or left <= 0:
            return found, named
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(receiver.arrived.wait(), left)


async def _stored_events(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Every event the gateway kept for the run's source, page by page."""
    stored: list[dict[str, Any]] = []
    params: dict[str, Any] = {"source": SOURCE, "limit": 250}
    while True:
        response = await http.get("/api/v1/events", params=params)
        response.raise_for_status()
        page = response.json()
        stored += page["data"]
        if not page["nextCursor"]:
            return stored
        params["cursor"] = page["nextCursor"]


async def _drive(
    gateway: GatewayProcess,
    receiver: Receiver,
    executions: int,
    kills: int,
    seconds: float,
    rng: random.Random,
) -> ChaosReport:
    (key,) = gateway.admin_keys()
    journal = Journal()
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with (
        httpx.AsyncClient(
            base_url=gateway.url, headers={"X-N8N-API-KEY": key}, timeout=15, limits=limits
        ) as http,
        httpx.AsyncClient(base_url=gateway.url, timeout=15, limits=limits) as anon,
    ):
        events = Events(http, anon)
        await events.create_source()
        slots = _slots(executions, rng)
        plans: list[Plan] = await _bounded(
            [_park_one(http, receiver.url, seconds, rng, k, o) for k, o in slots]
        )
        timed = _jobs(http, events, plans, journal, _kill_times(kills, seconds), seconds, rng)
        events.give_up = time.monotonic() + seconds + SETTLE_SECONDS
        await asyncio.gather(_dispatch(timed), _kill_loop(gateway, kills, seconds, journal, rng))
        states = await _settle(http, plans, journal.down)
        stored = await _stored_events(http)
    found, named = await _callbacks(receiver, expected_callbacks(states))
    report = check_invariants(plans, states, journal, found, now_ms(), stored, named)
    report.callbacks_received = len(receiver.received)
    return report


async def run_chaos(
    workdir: Path,
    executions: int = 150,
    kills: int = 2,
    seconds: float = 8.0,
    seed: int | None = None,
    database_url: str | None = None,
) -> ChaosReport:
    """Run the chaos scenario in ``workdir`` (logs; the SQLite database unless
    ``database_url``, an empty PostgreSQL database, is given) and return what it found.

    ``seconds`` is the window over which calls, events, stops, kills and timer deadlines
    spread; parking comes before it, and settling (at most ``SETTLE_SECONDS`` twice) after it.
    """
    seed = random.randrange(2**32) if seed is None else seed
    rng = random.Random(seed)
    started = time.monotonic()
    async with running_receiver() as receiver:
        env = {**ENV, "WAITGATE_CALLBACK_ALLOWED_ORIGINS": origin_of(receiver.url)}
        if database_url is not None:
            env["WAITGATE_DATABASE_URL"] = database_url
        gateway = GatewayProcess(workdir, env, name="chaos")
        await asyncio.to_thread(gateway.start)
        try:
            report = await _drive(gateway, receiver, executions, kills, seconds, rng)
        finally:
            await asyncio.to_thread(gateway.kill)
    report.seconds, report.seed = time.monotonic() - started, seed
    print(report.summary())
    for violation in report.violations[:20]:
        print("  violation:", violation)
    return report


def main() -> None:
    """The long variant: 2000 executions, 5 kills, a 40 s window (about a minute in all).
    Arguments: ``[seed] [--postgres]``: the seed of a run to repeat; ``--postgres`` runs it
    on a fresh database of the server ``WAITGATE_TEST_POSTGRES_URL`` names (dropped after)."""
    args = [a for a in sys.argv[1:] if a != "--postgres"]
    seed = int(args[0]) if args else None
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        database_url = None
        if "--postgres" in sys.argv[1:]:
            admin = postgres_admin_url()
            if admin is None:
                sys.exit(f"--postgres needs {POSTGRES_ENV}")
            database_url = stack.enter_context(fresh_postgres_database(admin))
        report = asyncio.run(
            run_chaos(
                folder, executions=2000, kills=5, seconds=40.0, seed=seed, database_url=database_url
            )
        )
    sys.exit(1 if report.violations or report.lost else 0)


if __name__ == "__main__":
    main()
