"""The storage seam: the ``Store``, whose verbs are scripts run by a database driver.

Every verb is written once, as a script of named statements (``persistence.script``), in the
module of its concept (executions, waits, outbox, tags, keys, answers, audit). A driver runs
each script in one transaction: SQLite on its writer thread (reads on a reader pool),
PostgreSQL on a pooled connection. Every state transition is one conditional write that
returns the row after it; a verb whose condition does not hold writes nothing and returns
``Unchanged`` with the execution as its transaction saw it (``None`` if there is none), so
a refusal is explained by the state that refused it, without another look at the database.
Instants are milliseconds since the epoch and always come from the caller's clock.

The store is the only source of wake-ups: after a commit that parked a deadline, added to the
outbox or stored a held caller's answer, it calls the listeners (and PostgreSQL notifies the
other replicas, whose stores call theirs).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from persistence import (
    answers,
    audit,
    channels,
    decisions,
    endpoints,
    events,
    executions,
    keys,
    outbox,
    reminders,
    tags,
    traces,
    waits,
)
from persistence.script import Script, Wake, WakeKind
from persistence.sqlfiles import load_migrations, migrate, pending_migrations

P = ParamSpec("P")
T = TypeVar("T")
Verb = Callable[Concatenate["Store", P], Coroutine[Any, Any, T]]


class Driver(Protocol):
    """Runs scripts on one database."""

    dialect: str

    async def open(self, heard: Callable[[Wake], None]) -> None:
        """Connect; ``heard`` is called with the wake-ups other replicas commit."""

    async def close(self) -> None:
        """Release every connection."""

    async def write(
        self, script: Callable[[], Script[T]], *, brief: bool = False
    ) -> tuple[T, list[Wake]]:
        """Run the script ``script()`` makes in a write transaction; its value and wake-ups,
        once committed. A driver may make and run it more than once before it commits (each
        run but the last rolled back), so making it must have no effect of its own.
        ``brief``: it writes a few rows of one execution (microseconds of the database's
        work), which a driver may run on the event loop."""

    async def read(self, script: Script[T], *, snapshot: bool = False) -> T:
        """Run a read-only ``script`` (``snapshot``: every statement of it sees the database
        as of its first one; otherwise each sees the latest commit)."""


def _writes(script: Callable[P, Script[T]], *, brief: bool = False) -> Verb[P, T]:
    """A write verb; ``brief`` for one that writes a few rows of one execution (the request
    path's), which the SQLite driver runs on the event loop (``Driver.write``)."""

    @functools.wraps(script)
    async def verb(store: Store, /, *args: P.args, **kwargs: P.kwargs) -> T:
        made = functools.partial(script, *args, **kwargs)
        value, wakes = await store.db.write(made, brief=brief)
        for wake in dict.fromkeys(wakes):
            store.heard(wake)
        return value

    return verb


def _reads(script: Callable[P, Script[T]], *, snapshot: bool = False) -> Verb[P, T]:
    """A read verb; ``snapshot`` for one whose statements make one answer together (a row and
    its children), which a commit between them would tear apart."""

    @functools.wraps(script)
    async def verb(store: Store, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await store.db.read(script(*args, **kwargs), snapshot=snapshot)

    return verb


class Store:
    """Where executions, waits, deliveries, tags and API keys live."""

    db: Driver

    def __init__(self, db: Driver) -> None:
        self.db = db
        self._listeners: dict[WakeKind, list[Callable[..., None]]] = {k: [] for k in WakeKind}

    def on_outbox(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after a commit (here, or in another replica) added to the outbox."""
        self._listeners[WakeKind.OUTBOX].append(listener)

    def on_deadline(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(wait_till)`` after a commit (here, or in another replica) parked a
        wait with a deadline."""
        self._listeners[WakeKind.DEADLINE].append(listener)

    def on_held_answer(self, listener: Callable[[int, int], None]) -> None:
        """Call ``listener(execution, seq)`` after a commit (here, or in another replica) stored
        a held caller's answer."""
        self._listeners[WakeKind.HELD].append(listener)

    def heard(self, wake: Wake) -> None:
        """Call the listeners of a committed wake-up (one from another replica is checked)."""
        args: tuple[int, ...] = ()
        if wake.kind is WakeKind.DEADLINE:
            if not wake.payload.isdigit():
                return
            args = (int(wake.payload),)
        elif wake.kind is WakeKind.HELD:
            execution_id, _, seq = wake.payload.partition(":")
            if not (execution_id.isdigit() and seq.isdigit()):
                return
            args = (int(execution_id), int(seq))
        for listener in self._listeners[wake.kind]:
            listener(*args)

    async def open(self) -> None:
        """Connect. Must be called before any other verb."""
        await self.db.open(self.heard)

    async def close(self) -> None:
        """Release every connection."""
        await self.db.close()

    async def migrate(self) -> list[int]:
        """Apply the migrations not yet applied; return their versions. Raises ``StoreError``
        on a database that a newer waitgate has migrated."""
        migrations = load_migrations(self.db.dialect)
        applied, _ = await self.db.write(functools.partial(migrate, migrations))
        return applied

    async def pending_migrations(self) -> list[int]:
        """Versions of the migrations not yet applied (``StoreError`` as for ``migrate``)."""
        return await self.db.read(pending_migrations(load_migrations(self.db.dialect)))

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the database answers."""
        await self.database_time()

    database_time = _reads(executions.database_time)

    create_execution = _writes(executions.create_execution, brief=True)
    retry_execution = _writes(executions.retry_execution)
    get_execution = _reads(executions.get_execution)
    finish = _writes(executions.finish, brief=True)
    stop = _writes(executions.stop, brief=True)
    stop_many = _writes(executions.stop_many)
    set_custom_data = _writes(executions.set_custom_data, brief=True)
    delete_execution = _writes(executions.delete_execution)
    list_executions = _reads(executions.list_executions, snapshot=True)
    count_by_status = _reads(executions.count_by_status)
    prune_floor = _reads(executions.prune_floor)
    prune = _writes(executions.prune)

    get_wait = _reads(waits.get_wait)
    wait_traces = _reads(traces.wait_traces)
    park = _writes(waits.park, brief=True)
    create_parked = _writes(waits.create_parked, brief=True)
    resume = _writes(waits.resume, brief=True)
    resume_by_call = _writes(waits.resume_by_call, brief=True)
    record_early_resume = _writes(waits.record_early_resume, brief=True)
    claim_due = _writes(waits.claim_due)
    claim_timers = _writes(reminders.claim_timers)
    count_overdue = _reads(waits.count_overdue)
    next_deadline = _reads(waits.next_deadline)
    wait_decisions = _reads(waits.wait_decisions)

    decide = _writes(decisions.decide, brief=True)
    execution_decisions = _reads(decisions.execution_decisions)
    overview = _reads(executions.overview)
    approver_inbox = _reads(decisions.approver_inbox)

    claim_deliveries = _writes(outbox.claim_deliveries)
    next_delivery_due = _reads(outbox.next_delivery_due)
    record_attempt = _writes(outbox.record_attempt)
    get_delivery = _reads(outbox.get_delivery)
    execution_deliveries = _reads(outbox.execution_deliveries, snapshot=True)
    redeliver = _writes(outbox.redeliver)
    defer_delivery = _writes(outbox.defer_delivery)
    recover_deliveries = _writes(endpoints.recover)
    list_endpoints = _reads(endpoints.list_endpoints)
    count_endpoints_by_state = _reads(endpoints.count_endpoints_by_state)

    put_held_answer = _writes(answers.put_held_answer, brief=True)
    get_held_answer = _reads(answers.get_held_answer)
    put_idempotent_answer = _writes(answers.put_idempotent_answer, brief=True)
    get_idempotent_answer = _reads(answers.get_idempotent_answer)

    record_resume_attempts = _writes(audit.record_resume_attempts)
    resume_attempts = _reads(audit.resume_attempts)

    create_tag = _writes(tags.create_tag)
    get_tag = _reads(tags.get_tag)
    list_tags = _reads(tags.list_tags)
    rename_tag = _writes(tags.rename_tag)
    delete_tag = _writes(tags.delete_tag)
    tag_manageable = _reads(tags.tag_manageable)
    execution_tags = _reads(tags.execution_tags)
    set_execution_tags = _writes(tags.set_execution_tags)

    create_api_key = _writes(keys.create_api_key)
    find_api_key = _reads(keys.find_api_key)
    list_api_keys = _reads(keys.list_api_keys)
    revoke_api_key = _writes(keys.revoke_api_key)
    create_first_api_key = _writes(keys.create_first_api_key)

    create_channel = _writes(channels.create_channel)
    get_channel = _reads(channels.get_channel)
    list_channels = _reads(channels.list_channels)
    update_channel = _writes(channels.update_channel)
    delete_channel = _writes(channels.delete_channel)
    create_event_source = _writes(events.create_event_source)
    get_event_source = _reads(events.get_event_source)
    list_event_sources = _reads(events.list_event_sources)
    update_event_source = _writes(events.update_event_source)
    delete_event_source = _writes(events.delete_event_source)
    record_event = _writes(events.record_event)
    replay_event = _writes(events.replay_event)
    get_event = _reads(events.get_event)
    list_events = _reads(events.list_events)
    events_of_execution = _reads(events.events_of_execution)
    prune_events = _writes(events.prune_events)
    prune_source_paths = _writes(events.prune_source_paths)
