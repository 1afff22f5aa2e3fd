"""Chaos: duplicate and racing resume calls, stops and SIGKILLs against one SQLite gateway.

``run_chaos`` parks executions at webhook waits, timer waits and waits that take either,
all with a callback URL on a real receiver. Over a window of ``seconds`` it fires every
webhook URL two or three times (two calls at once, sometimes a late third), stops a few
executions, and SIGKILLs and restarts the gateway ``kills`` times; timers fall due meanwhile,
some while the gateway is down. A call cut by a kill is recorded as unknown, never as
acknowledged. Then it checks, from the API and the receiver, that nothing acknowledged was
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
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from gateway.origins import origin_of
from tests.process import GatewayProcess
from tests.receiver import Receiver, running_receiver

ENV = {
    "WAITGATE_CALLBACK_TIMEOUT": "1",
    "WAITGATE_LOG_LEVEL": "warning",
}
CONCURRENCY = 32
SETTLE_SECONDS = 20.0
"""How long, at most, timers and then callbacks may take to catch up after the window."""
BURST = 0.12
"""The share of executions whose calls go out in the last 100 ms before a kill."""
GRACE_MS = 1000
"""How long after its (effective) deadline a stop still counts as beating a timer."""
RESUMED, CANCELED = "execution.resumed", "execution.canceled"
Job = Callable[[], Coroutine[Any, Any, None]]
State = dict[str, Any]
Down = list[tuple[int, int]]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _ms(instant: str | None) -> int | None:
    if instant is None:
        return None
    return int(datetime.fromisoformat(instant.replace("Z", "+00:00")).timestamp() * 1000)


@dataclass
class Plan:
    """What the harness does to one parked execution."""

    eid: int
    resume_url: str | None
    deadline: int | None
    calls: int
    stop: bool


@dataclass
class Call:
    """One request and what came back: a status, or ``None`` when the connection was cut."""

    call_id: str
    status: int | None = None
    sent_at: int = 0
    answered_at: int = 0


@dataclass
class Journal:
    """Everything the clients saw, per execution, and when the gateway was down."""

    resumes: dict[int, list[Call]] = field(default_factory=dict)
    stops: dict[int, Call] = field(default_factory=dict)
    down: Down = field(default_factory=list)
    kills: int = 0


@dataclass
class ChaosReport:
    """The figures of one run and every invariant it found broken (none, when all is well)."""

    parked: int = 0
    resumed_by_webhook: int = 0
    resumed_by_timeout: int = 0
    acknowledged: int = 0
    duplicates_refused: int = 0
    unknown: int = 0
    unknown_committed: int = 0
    stops: int = 0
    kills_survived: int = 0
    timers_due_while_down: int = 0
    callbacks_received: int = 0
    callback_ids: int = 0
    lost: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0
    seed: int = 0

    def summary(self) -> str:
        """One paragraph of figures."""
        return (
            f"chaos: parked {self.parked}; resumed {self.resumed_by_webhook} by webhook, "
            f"{self.resumed_by_timeout} by timeout ({self.timers_due_while_down} timers fell "
            f"due while down); resume calls {self.acknowledged} acknowledged, "
            f"{self.duplicates_refused} refused (409), {self.unknown} unknown "
            f"(connection cut; {self.unknown_committed} had resumed); stops {self.stops}; "
            f"kills survived {self.kills_survived}; "
            f"callbacks received {self.callbacks_received}, distinct ids {self.callback_ids}; "
            f"answers {dict(self.statuses)}; lost {self.lost}; violations "
            f"{len(self.violations)}; {self.seconds:.1f} s (seed {self.seed})"
        )


async def _request(http: httpx.AsyncClient, call: Call, method: str, url: str, **kw: Any) -> None:
    """Send, recording the status, or nothing (unknown) if the connection failed."""
    call.sent_at = _now_ms()
    try:
        response = await http.request(method, url, **kw)
    except httpx.TransportError:
        return
    finally:
        call.answered_at = _now_ms()
    call.status = response.status_code


async def _bounded(jobs: list[Awaitable[Any]], limit: int = CONCURRENCY) -> list[Any]:
    slots = asyncio.Semaphore(limit)

    async def run(job: Awaitable[Any]) -> Any:
        async with slots:
            return await job

    return await asyncio.gather(*(run(j) for j in jobs))


async def _park_one(
    http: httpx.AsyncClient, callback_url: str, seconds: float, rng: random.Random
) -> Plan:
    """Park one execution: mostly webhook waits, some timers, some both, some left alone."""
    kind = rng.choices(["webhook", "racing", "timer", "idle"], weights=[55, 20, 15, 10])[0]
    created = await http.post(
        "/api/v1/executions", json={"workflowId": "chaos", "callbackUrl": callback_url}
    )
    created.raise_for_status()
    eid: int = created.json()["id"]
    deadline = None
    wait: dict[str, Any] = {}
    if kind in {"racing", "timer"}:
        deadline = _now_ms() + int(rng.uniform(0.5, seconds) * 1000)
        wait["waitTill"] = datetime.fromtimestamp(deadline / 1000, UTC).isoformat()
    if kind != "timer":
        wait["webhook"] = {"httpMethod": "POST"}
    parked = await http.post(f"/api/v1/executions/{eid}/wait", json=wait)
    parked.raise_for_status()
    calls = rng.choice([2, 2, 3]) if kind in {"webhook", "racing"} else 0
    stop = kind != "idle" and rng.random() < 0.06
    url = parked.json().get("resumeUrl") if kind != "timer" else None
    return Plan(eid, url, deadline, calls, stop)


def _call_job(http: httpx.AsyncClient, call: Call, url: str, body: Any = None) -> Job:
    async def job() -> None:
        await _request(http, call, "POST", url, json=body)

    return job


def _kill_times(kills: int, seconds: float) -> list[float]:
    """When, from the start of the window, each SIGKILL comes."""
    return [seconds * (k + 1) / (kills + 1) for k in range(kills)]


def _jobs(
    http: httpx.AsyncClient,
    plans: list[Plan],
    journal: Journal,
    kill_times: list[float],
    seconds: float,
    rng: random.Random,
) -> list[tuple[float, Job]]:
    """Each resume and stop call at its moment in the window; duplicates start together,
    and a burst of them just before each kill, so that some are in flight when it comes."""
    timed: list[tuple[float, Job]] = []
    for plan in plans:
        calls = journal.resumes.setdefault(plan.eid, [])
        at = rng.uniform(0, seconds * 0.9)
        if kill_times and rng.random() < BURST:
            at = max(0.0, rng.choice(kill_times) - rng.uniform(0, 0.1))
        for k in range(plan.calls):
            call = Call(f"{plan.eid}-{k}")
            calls.append(call)
            late = 0.0 if k < 2 else rng.uniform(0, 1.5)  # a third call replays later
            timed.append((at + late, _call_job(http, call, plan.resume_url or "", {"call": k})))
        if plan.stop:
            stop = journal.stops[plan.eid] = Call(f"{plan.eid}-stop")
            path = f"/api/v1/executions/{plan.eid}/stop"
            timed.append((rng.uniform(0, seconds * 0.9), _call_job(http, stop, path)))
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
        down_at = _now_ms()
        await asyncio.to_thread(gateway.kill)
        await asyncio.sleep(rng.uniform(0.2, 0.6))  # down a while: timers fall due meanwhile
        await asyncio.to_thread(gateway.start)
        journal.down.append((down_at, _now_ms()))
        journal.kills += 1


async def _states(http: httpx.AsyncClient, eids: list[int]) -> dict[int, State]:
    async def one(eid: int) -> State:
        response = await http.get(f"/api/v1/executions/{eid}", params={"includeData": "true"})
        response.raise_for_status()
        found: State = response.json()
        return found

    return dict(zip(eids, await _bounded([one(e) for e in eids]), strict=True))


def _wait(state: State) -> dict[str, Any]:
    waits: list[dict[str, Any]] = state.get("data", {}).get("waits", [])
    return waits[0] if waits else {}


def _stopped_first(state: State, deadline: int, down: Down) -> bool:
    """Whether a stop beat the timer: it came before the deadline or, for a deadline that
    passed while the gateway was down, before the restart (with ``GRACE_MS`` either way)."""
    stopped = _ms(state.get("stoppedAt"))
    due = max([deadline, *(up for gone, up in down if gone <= deadline < up)])
    return state["status"] == "canceled" and stopped is not None and stopped < due + GRACE_MS


def _unfired(plans: list[Plan], states: dict[int, State], now: int, down: Down) -> list[int]:
    """Executions whose timer is due but that neither resumed nor were stopped first."""
    return [
        p.eid
        for p in plans
        if p.deadline is not None
        and p.deadline <= now
        and _wait(states[p.eid]).get("resumedAt") is None
        and not _stopped_first(states[p.eid], p.deadline, down)
    ]


async def _settle(http: httpx.AsyncClient, plans: list[Plan], down: Down) -> dict[int, State]:
    """Final states, after every timer due by the end of the window had time to fire."""
    last = max((p.deadline for p in plans if p.deadline is not None), default=0)
    await asyncio.sleep(max(0.0, (last - _now_ms()) / 1000))
    states = await _states(http, [p.eid for p in plans])
    give_up = time.monotonic() + SETTLE_SECONDS
    while (pending := _unfired(plans, states, _now_ms(), down)) and time.monotonic() < give_up:
        await asyncio.sleep(0.2)
        states.update(await _states(http, pending))
    return states


def _expected_events(states: dict[int, State]) -> set[tuple[int, str]]:
    expected = set()
    for eid, state in states.items():
        if _wait(state).get("resumedAt") is not None:
            expected.add((eid, RESUMED))
        if state["status"] == "canceled":
            expected.add((eid, CANCELED))
    return expected


def _callback_ids(receiver: Receiver) -> dict[tuple[int, str], set[str]]:
    found: dict[tuple[int, str], set[str]] = {}
    for got in list(receiver.received):
        event = json.loads(got.body)
        key = (int(event["data"]["executionId"]), str(event["type"]))
        found.setdefault(key, set()).add(got.headers["webhook-id"])
    return found


async def _callbacks(
    receiver: Receiver, expected: set[tuple[int, str]]
) -> dict[tuple[int, str], set[str]]:
    """The receiver's webhook-ids per (execution, event), once every expected one arrived."""
    give_up = time.monotonic() + SETTLE_SECONDS
    while True:
        receiver.arrived.clear()
        found = _callback_ids(receiver)
        left = give_up - time.monotonic()
        if expected <= set(found) or left <= 0:
            return found
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(receiver.arrived.wait(), left)


def _check_resumes(plan: Plan, state: State, calls: list[Call], report: ChaosReport) -> None:
    """At most one 200 per wait, persisted with its payload; a refused call never was."""
    eid, waits = plan.eid, state.get("data", {}).get("waits", [])
    resumed = [w for w in waits if w.get("resumedAt") is not None]
    if len(waits) != 1 or len(resumed) > 1:
        report.violations.append(f"{eid}: {len(waits)} waits, {len(resumed)} resumed")
    wait = _wait(state)
    acked = [k for k, c in enumerate(calls) if c.status == 200]
    body = (wait.get("payload") or {}).get("body")
    if len(acked) > 1:
        report.violations.append(f"{eid}: {len(acked)} resume calls acknowledged")
    if acked and (wait.get("resumedBy") != "webhook" or body != {"call": acked[0]}):
        report.lost += 1
        report.violations.append(f"{eid}: acknowledged resume call {acked[0]} lost: {wait}")
    if wait.get("resumedBy") == "webhook":
        allowed = [{"call": k} for k, c in enumerate(calls) if c.status in {200, None}]
        if body not in allowed:
            report.violations.append(f"{eid}: resumed with {body}, not an accepted call")
        elif not acked:
            report.unknown_committed += 1  # the winning call was cut after its commit
    if wait.get("resumedBy") == "timeout":
        fired, due = _ms(wait.get("resumedAt")), plan.deadline
        if due is None or fired is None or fired < due:
            report.violations.append(f"{eid}: timer fired at {fired}, due {due}")
    quiet = not calls and plan.deadline is None and not plan.stop
    if quiet and (state["status"] != "waiting" or wait.get("resumedAt") is not None):
        report.violations.append(f"{eid}: nobody resumed it, yet it is {state['status']}")


def _check_stop(
    plan: Plan, state: State, calls: list[Call], stop: Call, report: ChaosReport
) -> None:
    """An acknowledged stop persisted; nothing resumed the execution after it."""
    eid = plan.eid
    stopped_at = _ms(state.get("stoppedAt"))
    if stop.status == 200:
        report.stops += 1
        if state["status"] != "canceled" or stopped_at is None:
            report.lost += 1
            report.violations.append(f"{eid}: acknowledged stop lost, status {state['status']}")
    elif stop.status is not None:
        report.violations.append(f"{eid}: stop answered {stop.status}")
    if state["status"] != "canceled" or stopped_at is None:
        return
    resumed_at = _ms(_wait(state).get("resumedAt"))
    if resumed_at is not None and resumed_at > stopped_at:
        report.violations.append(f"{eid}: resumed at {resumed_at} after its stop {stopped_at}")
    if stop.status == 200:
        after = [c for c in calls if c.status == 200 and c.sent_at > stop.answered_at]
        if after:
            report.violations.append(f"{eid}: resume {after[0].call_id} accepted after the stop")


def _check_timer(plan: Plan, state: State, end: int, journal: Journal, report: ChaosReport) -> None:
    """A timer due by the end fired, unless a stop came first; count those due while down."""
    if plan.deadline is None or plan.deadline > end:
        return
    if _unfired([plan], {plan.eid: state}, end, journal.down):
        report.lost += 1
        report.violations.append(f"{plan.eid}: timer due at {plan.deadline} never fired")
    if _wait(state).get("resumedBy") == "timeout":
        report.timers_due_while_down += any(a <= plan.deadline < b for a, b in journal.down)


def _check_callbacks(
    expected: set[tuple[int, str]], found: dict[tuple[int, str], set[str]], report: ChaosReport
) -> None:
    """Every resume and stop announced, each event under one webhook-id, nothing invented."""
    for eid, kind in sorted(expected - set(found)):
        report.lost += 1
        report.violations.append(f"{eid}: {kind} never announced")
    for eid, kind in sorted(set(found) - expected):
        report.violations.append(f"{eid}: {kind} announced but did not happen")
    for (eid, kind), ids in sorted(found.items()):
        if len(ids) > 1:
            report.violations.append(f"{eid}: {kind} sent under {len(ids)} webhook-ids")
    report.callback_ids = len({i for ids in found.values() for i in ids})


def check_invariants(
    plans: list[Plan],
    states: dict[int, State],
    journal: Journal,
    found: dict[tuple[int, str], set[str]],
    end: int,
) -> ChaosReport:
    """Every invariant for every execution, given the final ``states`` (API answers with
    ``includeData``), what the clients saw, and the webhook-ids the receiver got per
    (execution, event type): the figures, ``lost`` and ``violations`` of the report."""
    report = ChaosReport(parked=len(plans))
    for plan in plans:
        state, calls = states[plan.eid], journal.resumes.get(plan.eid, [])
        _check_resumes(plan, state, calls, report)
        if plan.eid in journal.stops:
            _check_stop(plan, state, calls, journal.stops[plan.eid], report)
        _check_timer(plan, state, end, journal, report)
        by = _wait(state).get("resumedBy")
        report.resumed_by_webhook += by == "webhook"
        report.resumed_by_timeout += by == "timeout"
    resumes = [c for calls in journal.resumes.values() for c in calls]
    every = resumes + list(journal.stops.values())
    report.statuses.update(c.status for c in every if c.status is not None)
    report.acknowledged = sum(c.status == 200 for c in resumes)
    report.duplicates_refused = sum(c.status == 409 for c in resumes)
    report.unknown = sum(c.status is None for c in every)
    report.violations += [f"answered {s}" for s in report.statuses if s >= 500]
    _check_callbacks(_expected_events(states), found, report)
    report.kills_survived = journal.kills
    return report


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
    async with httpx.AsyncClient(
        base_url=gateway.url, headers={"X-N8N-API-KEY": key}, timeout=15, limits=limits
    ) as http:
        plans: list[Plan] = await _bounded(
            [_park_one(http, receiver.url, seconds, rng) for _ in range(executions)]
        )
        timed = _jobs(http, plans, journal, _kill_times(kills, seconds), seconds, rng)
        await asyncio.gather(_dispatch(timed), _kill_loop(gateway, kills, seconds, journal, rng))
        states = await _settle(http, plans, journal.down)
    found = await _callbacks(receiver, _expected_events(states))
    report = check_invariants(plans, states, journal, found, _now_ms())
    report.callbacks_received = len(receiver.received)
    return report


async def run_chaos(
    workdir: Path,
    executions: int = 150,
    kills: int = 2,
    seconds: float = 8.0,
    seed: int | None = None,
) -> ChaosReport:
    """Run the chaos scenario in ``workdir`` (database, logs) and return what it found.

    ``seconds`` is the window over which calls, stops, kills and timer deadlines spread;
    parking comes before it, and settling (at most ``SETTLE_SECONDS`` twice) after it.
    """
    seed = random.randrange(2**32) if seed is None else seed
    rng = random.Random(seed)
    started = time.monotonic()
    async with running_receiver() as receiver:
        env = {**ENV, "WAITGATE_CALLBACK_ALLOWED_ORIGINS": origin_of(receiver.url)}
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
    """The long variant: 2000 executions, 5 kills, a 40 s window (about a minute in all);
    an optional argument is the seed of a run to repeat."""
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else None
    with tempfile.TemporaryDirectory() as folder:
        report = asyncio.run(
            run_chaos(Path(folder), executions=2000, kills=5, seconds=40.0, seed=seed)
        )
    sys.exit(1 if report.violations or report.lost else 0)


if __name__ == "__main__":
    main()
