"""The lifecycle as a state machine: random sequences of verbs against the real store.

Hypothesis drives create / park / resume (webhook, api) / timeout / stop / finish / retry /
delete on a SQLite store and checks after every step that the store agrees with a tiny model:
statuses move only along the allowed edges, a wait resumes at most once, and counts add up.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gateway.domain import NewExecution, ResumedBy, Status, WebhookSpec
from persistence.sqlite import SqliteStore

ALLOWED = {
    Status.RUNNING: {Status.WAITING, Status.SUCCESS, Status.ERROR, Status.CANCELED, Status.CRASHED},
    Status.WAITING: {Status.RUNNING, Status.CANCELED},
}
HOOK = WebhookSpec(methods=("POST",))
T = TypeVar("T")


@dataclass
class Model:
    """What the store should hold for one execution."""

    status: Status = Status.RUNNING
    wait_seq: int = 1
    deadline: int | None = None
    resumes: int = 0
    parks: int = 0
    history: list[Status] = field(default_factory=list)


class Lifecycle(RuleBasedStateMachine):
    """Random operations; the store must match the model after each."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = tempfile.TemporaryDirectory()
        self.store = SqliteStore(Path(self.folder.name) / "w.db")
        self.run(self.store.open())
        self.run(self.store.migrate())
        self.now = 1_800_000_000_000
        self.models: dict[int, Model] = {}

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(work)

    def teardown(self) -> None:
        self.run(self.store.close())
        self.loop.close()
        self.folder.cleanup()

    def _move(self, eid: int, status: Status) -> None:
        model = self.models[eid]
        assert status in ALLOWED.get(model.status, set()), f"{model.status} -> {status}"
        model.history.append(model.status)
        model.status = status

    def _pick(self, data: st.DataObject, *statuses: Status) -> int | None:
        ids = sorted(e for e, m in self.models.items() if m.status in statuses)
        return data.draw(st.sampled_from(ids)) if ids else None

    @rule()
    def create(self) -> None:
        execution = self.run(self.store.create_execution(NewExecution("wf"), self.now))
        self.models[execution.id] = Model()

    @rule(data=st.data(), delay=st.one_of(st.none(), st.integers(0, 5000)))
    def park(self, data: st.DataObject, delay: int | None) -> None:
        eid = self._pick(data, *Status)
        if eid is None:
            return
        deadline = None if delay is None else self.now + delay
        outcome = self.run(self.store.park(eid, deadline, HOOK, self.now))
        model = self.models[eid]
        assert bool(outcome) == (model.status is Status.RUNNING)
        if outcome:
            self._move(eid, Status.WAITING)
            model.deadline = deadline
            model.parks += 1

    @rule(data=st.data(), by=st.sampled_from([ResumedBy.WEBHOOK, ResumedBy.API]))
    def resume(self, data: st.DataObject, by: ResumedBy) -> None:
        eid = self._pick(data, *Status)
        if eid is None:
            return
        model = self.models[eid]
        seq = data.draw(st.integers(1, model.wait_seq + 1))
        resumed = self.run(self.store.resume(eid, seq, by, {"n": 1}, self.now))
        expected = model.status is Status.WAITING and seq == model.wait_seq
        assert bool(resumed) == expected
        if resumed:
            self._move(eid, Status.RUNNING)
            model.wait_seq += 1
            model.resumes += 1

    @rule(advance=st.integers(0, 3000))
    def time_passes(self, advance: int) -> None:
        self.now += advance
        claimed = self.run(self.store.claim_due(self.now, 1000))
        due = {
            eid
            for eid, m in self.models.items()
            if m.status is Status.WAITING and m.deadline is not None and m.deadline <= self.now
        }
        assert {t.execution_id for t in claimed} == due
        for eid, seq, late_ms in claimed:
            assert seq == self.models[eid].wait_seq
            deadline = self.models[eid].deadline
            assert deadline is not None
            assert late_ms == self.now - deadline
            self._move(eid, Status.RUNNING)
            self.models[eid].wait_seq += 1
            self.models[eid].resumes += 1

    @rule(data=st.data())
    def stop(self, data: st.DataObject) -> None:
        eid = self._pick(data, *Status)
        if eid is None:
            return
        stopped = self.run(self.store.stop(eid, self.now))
        assert bool(stopped) == (self.models[eid].status in {Status.RUNNING, Status.WAITING})
        if stopped:
            self._move(eid, Status.CANCELED)

    @rule(data=st.data(), outcome=st.sampled_from([Status.SUCCESS, Status.ERROR]))
    def finish(self, data: st.DataObject, outcome: Status) -> None:
        eid = self._pick(data, *Status)
        if eid is None:
            return
        finished = self.run(self.store.finish(eid, outcome, None, None, self.now))
        assert bool(finished) == (self.models[eid].status is Status.RUNNING)
        if finished:
            self._move(eid, outcome)

    @precondition(lambda self: any(m.status.finished for m in self.models.values()))
    @rule(data=st.data())
    def retry_or_delete(self, data: st.DataObject) -> None:
        eid = self._pick(data, Status.SUCCESS, Status.ERROR, Status.CANCELED, Status.CRASHED)
        assert eid is not None
        if data.draw(st.booleans()):
            new = NewExecution("wf", mode="retry", retry_of=eid)
            retry = self.run(self.store.create_execution(new, self.now))
            self.models[retry.id] = Model()
        else:
            assert self.run(self.store.delete_execution(eid))
            del self.models[eid]
            assert self.run(self.store.get_execution(eid)) is None

    @invariant()
    def store_matches_model(self) -> None:
        for eid, model in self.models.items():
            execution = self.run(self.store.get_execution(eid, with_waits=True))
            assert execution is not None
            assert execution.status is model.status
            assert execution.wait_seq == model.wait_seq
            assert len(execution.waits) == model.parks
            resumed = [w for w in execution.waits if w.resumed_at is not None]
            assert len(resumed) == model.resumes  # each wait resumed at most once
            assert len({w.seq for w in resumed}) == len(resumed)

    @invariant()
    def counts_add_up(self) -> None:
        waiting = sum(1 for m in self.models.values() if m.status is Status.WAITING)
        deadline = self.run(self.store.next_deadline())
        expected = [m.deadline for m in self.models.values() if m.status is Status.WAITING]
        timed = [d for d in expected if d is not None]
        assert waiting == len(expected)
        if timed:
            assert deadline == min(timed)


TestLifecycle = Lifecycle.TestCase
TestLifecycle.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
